"""``init-backbone``: a random T5 with a local vocabulary, saved as an HF model directory that
loads offline (safetensors only); vocabulary sources; shapes; errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import spacy
import torch
from spacy.tokens import Doc, DocBin
from transformers import AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration
from typer.testing import CliRunner

from spacy_hyperloader.pretraining.backbone_init import SHAPES, count_parameters, init_backbone, iter_training_text
from spacy_hyperloader.cli import app
from spacy_hyperloader.sentt.tokenizer import load_tokenizer

from .tiny import TOY_TEXT

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "toy.txt"
    path.write_text("\n".join(TOY_TEXT) + "\n", encoding="utf8")
    return path


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory, text_file) -> Path:
    """A SentencePiece ``.model`` file with T5's special ids (pad 0, eos 1, unk 2, no bos)."""
    import sentencepiece as spm

    prefix = tmp_path_factory.mktemp("spm") / "spiece"
    spm.SentencePieceTrainer.train(
        input=str(text_file), model_prefix=str(prefix), vocab_size=150, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
    )
    return prefix.with_suffix(".model")


def _flat(output: str) -> str:
    """CLI output with rich's box borders and line wrapping undone."""
    return " ".join(output.replace("│", " ").split())


def _load(path: Path):
    return AutoModelForSeq2SeqLM.from_pretrained(path, use_safetensors=True), load_tokenizer(path)


def test_tiny_backbone_from_trained_vocabulary_loads_offline(tmp_path, text_file):
    out = init_backbone(tmp_path / "backbone", "tiny", train_text=[text_file], vocab_size=150, seed=0)
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth"))]
    model, tokenizer = _load(out)
    assert model.config.vocab_size == len(tokenizer) == model.get_input_embeddings().num_embeddings
    vocab = tokenizer.get_vocab()
    assert all(f"<extra_id_{i}>" in vocab for i in range(100))
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    config = model.config
    assert (config.d_model, config.d_ff, config.num_layers, config.num_decoder_layers, config.num_heads, config.d_kv) == (
        64, 256, 2, 2, 4, 16,
    )
    assert (config.decoder_start_token_id, config.pad_token_id, config.eos_token_id) == (0, 0, 1)
    assert config.feed_forward_proj == "relu" and config.relative_attention_num_buckets == 32
    # the package's own loader (safetensors only) takes it too, and it runs
    from spacy_hyperloader.model.backbone import load_backbone

    backbone = load_backbone(out)
    ids = tokenizer(["the quick brown fox <extra_id_0>"], return_tensors="pt").input_ids
    assert ids[0, -1].item() == tokenizer.eos_token_id
    with torch.no_grad():
        logits = backbone(input_ids=ids, decoder_input_ids=torch.zeros((1, 1), dtype=torch.long)).logits
    assert logits.shape == (1, 1, len(tokenizer))


def test_vocab_model_file_and_seeded_weights(tmp_path, spm_model):
    a = init_backbone(tmp_path / "a", "tiny", vocab=spm_model, seed=3)
    b = init_backbone(tmp_path / "b", "tiny", vocab=spm_model, seed=3)
    c = init_backbone(tmp_path / "c", "tiny", vocab=spm_model, seed=4)
    (ma, ta), (mb, _), (mc, _) = _load(a), _load(b), _load(c)
    assert ma.config.vocab_size == len(ta) == len(load_tokenizer(spm_model))
    assert "<extra_id_99>" in ta.get_vocab()
    sa, sb, sc = ma.state_dict(), mb.state_dict(), mc.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["shared.weight"], sc["shared.weight"])


def test_cli_prints_summary_last(tmp_path, spm_model):
    result = CliRunner().invoke(app, ["init-backbone", str(tmp_path / "bb"), "--shape", "tiny", "--vocab", str(spm_model)])
    assert result.exit_code == 0, result.output
    n_vocab = len(load_tokenizer(spm_model))
    n_params = count_parameters(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "bb", use_safetensors=True))
    assert result.output.strip().splitlines()[-1] == f"shape=tiny parameters={n_params} vocab_size={n_vocab}"


def test_shapes_match_t5_small_and_base():
    counts = {}
    for shape in ("small", "base"):
        with torch.device("meta"):
            counts[shape] = count_parameters(T5ForConditionalGeneration(T5Config(**SHAPES[shape], vocab_size=32128)))
    assert counts == {"small": 60_506_624, "base": 222_903_552}
    assert list(SHAPES) == ["tiny", "mini", "small", "base"]
    assert SHAPES["mini"]["d_model"] == 256 and SHAPES["mini"]["num_layers"] == 4


def test_training_text_sources(tmp_path):
    nlp = spacy.blank("en")
    docs = [Doc(nlp.vocab, words=["EU", "rejects", "German", "call"]), Doc(nlp.vocab, words=["Peter", "Blackburn"])]
    DocBin(docs=docs).to_disk(tmp_path / "corpus.spacy")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.txt").write_text("first line\n\n  second line  \n", encoding="utf8")
    (tmp_path / "dir" / "skip.json").write_text("{}", encoding="utf8")
    with zipfile.ZipFile(tmp_path / "brown.zip", "w") as archive:
        archive.writestr("brown/", "")
        archive.writestr("brown/README", "not corpus text\n")
        archive.writestr("brown/cats.txt", "ca01 news\n")
        archive.writestr("brown/ca01", "\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ./.\n\n\tIt/pps said/vbd ``/`` yes/rb ''/'' ./.\n")
        archive.writestr("brown/blob.pickle", b"\x80\x04\x00binary")
        archive.writestr("webtext/firefox.txt", "see http://example.com/a/b now\n")
    lines = list(iter_training_text([tmp_path / "corpus.spacy", tmp_path / "dir", tmp_path / "brown.zip"]))
    assert lines == [
        "EU rejects German call",
        "Peter Blackburn",
        "first line",
        "second line",
        "The Fulton County said .",
        "It said `` yes '' .",
        "see http://example.com/a/b now",
    ]
    long_line = " ".join(["word"] * 2000)
    (tmp_path / "long.txt").write_text(long_line, encoding="utf8")
    pieces = list(iter_training_text([tmp_path / "long.txt"]))
    assert len(pieces) > 1 and all(len(p) <= 2000 for p in pieces) and " ".join(pieces) == long_line


def test_errors(tmp_path, spm_model, text_file):
    with pytest.raises(ValueError, match="valid shapes: tiny, mini, small, base"):
        init_backbone(tmp_path / "x", "huge", vocab=spm_model)
    with pytest.raises(ValueError, match="--vocab.*--train-text"):
        init_backbone(tmp_path / "x", "tiny")
    with pytest.raises(ValueError, match="not both"):
        init_backbone(tmp_path / "x", "tiny", vocab=spm_model, train_text=[text_file])
    with pytest.raises(FileNotFoundError, match="missing.model"):
        init_backbone(tmp_path / "x", "tiny", vocab=tmp_path / "missing.model")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        init_backbone(tmp_path / "x", "tiny", train_text=[tmp_path / "nope.txt"])
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x", encoding="utf8")
    with pytest.raises(FileExistsError, match="--force"):
        init_backbone(full, "tiny", vocab=spm_model)
    init_backbone(full, "tiny", vocab=spm_model, force=True)
    assert (full / "model.safetensors").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    init_backbone(empty, "tiny", vocab=spm_model)  # an existing empty directory is fine

    runner = CliRunner()
    cases = [
        (["--shape", "huge", "--vocab", str(spm_model)], "tiny, mini, small, base"),
        (["--shape", "tiny"], "--train-text"),
        (["--shape", "tiny", "--vocab", str(tmp_path / "gone")], "gone"),
        (["--shape", "tiny", "--vocab", str(spm_model), "--train-text", str(text_file)], "not both"),
    ]
    for args, expected in cases:
        result = runner.invoke(app, ["init-backbone", str(tmp_path / "y"), *args])
        assert result.exit_code != 0 and expected in _flat(result.output), result.output
        assert isinstance(result.exception, SystemExit)  # a message, no traceback
    result = runner.invoke(app, ["init-backbone", str(full), "--shape", "tiny", "--vocab", str(spm_model)])
    assert result.exit_code != 0 and "--force" in _flat(result.output)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not found: needs the T5 vocabulary and NLTK text zips")
def test_shared_t5_vocab_and_nltk_zip(tmp_path):
    out = init_backbone(tmp_path / "t5vocab", "tiny", vocab=SHARED_DATA / "t5_vocab")
    model, tokenizer = _load(out)
    assert model.config.vocab_size == len(tokenizer) == 32100
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == 32099
    # a slice of the Brown corpus: tags stripped, READMEs skipped; a small vocabulary trains on it
    lines = []
    for line in iter_training_text([SHARED_DATA / "text" / "brown.zip"]):
        lines.append(line)
        if len(lines) == 2000:
            break
    assert lines[0].startswith("The Fulton County Grand Jury said Friday")
    assert not any("/at " in line or "/nn" in line for line in lines)
    sliced = tmp_path / "brown_slice.txt"
    sliced.write_text("\n".join(lines), encoding="utf8")
    out = init_backbone(tmp_path / "brown", "tiny", train_text=[sliced], vocab_size=500)
    model, tokenizer = _load(out)
    assert model.config.vocab_size == len(tokenizer) <= 600
