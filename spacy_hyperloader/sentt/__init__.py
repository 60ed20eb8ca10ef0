"""SentT': sequence labelling as sentinel-aligned seq2seq text (format, token codec, tokenizer)."""
