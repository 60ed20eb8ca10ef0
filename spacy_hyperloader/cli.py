"""Command line: ``python -m spacy_hyperloader COMMAND``."""

from __future__ import annotations

from pathlib import Path

import typer

from .pretraining.backbone_init import SHAPES
from .corpora import FORMATS

app = typer.Typer(
    name="spacy-hyperloader",
    help="HyperLoader multi-task sequence labelling for spaCy.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """HyperLoader multi-task sequence labelling for spaCy."""


@app.command()
def params(
    config: Path = typer.Argument(..., help="A T5 config JSON file or a local model directory."),
    tasks: int = typer.Option(..., "--tasks", min=1, help="Number of tasks the hypernetworks serve."),
    variant: str = typer.Option("hyperloader", "--variant", help="hyperloader, adapters_only, lora_only, lora_per_site or full_finetune."),
    lora_rank: int = typer.Option(8, "--lora-rank", min=1, help="LoRA rank."),
    bottleneck: int = typer.Option(0, "--bottleneck", min=0, help="Adapter bottleneck; 0 means d_model // 32."),
) -> None:
    """Build the model with random weights and count trainable and total parameters."""
    import torch

    from .model.backbone import build_backbone, load_backbone_config
    from .model.config import HyperLoaderConfig
    from .model.hyperloader import HyperLoaderModel

    if not config.exists():
        raise typer.BadParameter(f"{config} does not exist; give a T5 config JSON file or a model directory.")
    try:
        hl_config = HyperLoaderConfig(
            tasks=[f"task{i}" for i in range(tasks)], variant=variant, lora_rank=lora_rank,
            adapter_bottleneck=bottleneck or None,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    backbone_config = load_backbone_config(config)
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = HyperLoaderModel(build_backbone(backbone_config), hl_config)
    trainable, total = model.parameter_counts()
    for stack, hyper in model.hypernetworks.items():
        typer.echo(f"{stack} hypernetwork: {sum(p.numel() for p in hyper.parameters()):,}")
    typer.echo(f"task embeddings: {model.task_embedding.weight.numel():,}")
    arch = model.architecture
    layers = "+".join(str(arch.n_layers(backbone_config, stack)) for stack in ("encoder", "decoder"))
    typer.echo(f"variant={hl_config.variant} layers={layers} d_model={arch.d_model(backbone_config)}")
    typer.echo(f"trainable={trainable} total={total} percent={100 * trainable / total:.4f}")


def _fail(message: str) -> None:
    """A clean error: the message on stderr, exit status 1, no traceback."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


_FORMATS_HELP = "\n\n".join(f"{name}: {spec.description}. INPUT is {spec.input}." for name, spec in FORMATS.items())


@app.command(
    help=(
        "Convert a corpus to a spaCy DocBin (.spacy), one Doc per sentence, and print what was "
        "written; the last line is the summary (sentences, tokens, entities, chunk spans).\n\n"
        f"Formats:\n\n{_FORMATS_HELP}"
    ),
)
def convert(
    format: str = typer.Argument(..., metavar="FORMAT", help=f"Corpus format: {', '.join(FORMATS)}."),
    input_path: Path = typer.Argument(..., metavar="INPUT", help="The corpus file (a split directory for seq)."),
    output_path: Path = typer.Argument(..., metavar="OUTPUT", help="The .spacy file to write (folders are created)."),
    fraction: float = typer.Option(1.0, "--fraction", help="Keep this fraction of the sentences, in (0, 1]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --fraction sample."),
    spans_key: str = typer.Option(
        None, "--spans-key",
        help="Store the corpus's entities (NER labels or slots) in doc.spans[KEY] instead of doc.ents, "
        "for a task with target = \"spans\" and spans_key = KEY (every doc gets the key, empty when it has none).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    from spacy.tokens import DocBin

    from .corpora import convert as convert_corpus
    from .corpora import read_docs

    try:
        if spans_key is None:
            stats = convert_corpus(format, input_path, output_path, fraction=fraction, seed=seed, progress=progress)
        else:
            if not spans_key.strip():
                raise ValueError("--spans-key must not be empty")
            docs, stats = read_docs(format, input_path, fraction=fraction, seed=seed, progress=progress)
            for doc in docs:
                doc.spans[spans_key] = list(doc.ents)
                doc.set_ents([], default="missing")
            output_path.parent.mkdir(parents=True, exist_ok=True)
            DocBin(docs=docs, store_user_data=True).to_disk(output_path)
            stats.output_path = str(output_path)
    except (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
        _fail(str(err))
    where = f" (entities in doc.spans[{spans_key!r}])" if spans_key is not None else ""
    typer.echo(f"Wrote {output_path}{where}")
    typer.echo(stats.summary())


@app.command("init-backbone")
def init_backbone_command(
    output_dir: Path = typer.Argument(..., metavar="OUTPUT_DIR", help="The model directory to write."),
    shape: str = typer.Option(
        ..., "--shape", metavar="[" + "|".join(SHAPES) + "]",
        help="Model shape (T5 v1.0 style): tiny 64/256 2+2 layers, mini 256/1024 4+4, small = t5-small, base = t5-base.",
    ),
    vocab: Path = typer.Option(
        None, "--vocab", help="An existing vocabulary: a SentencePiece .model file, a tokenizer.json or a tokenizer directory.",
    ),
    train_text: list[Path] = typer.Option(
        None, "--train-text",
        help="Train a SentencePiece vocabulary on this text (repeatable): .txt files, directories (of .txt, .spacy, .zip files), "
        ".spacy DocBins, NLTK corpus .zip files.",
    ),
    vocab_size: int = typer.Option(8000, "--vocab-size", min=1, help="At most this many SentencePiece pieces (with --train-text)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights and of the text sample."),
    max_sentences: int = typer.Option(2_000_000, "--max-sentences", min=1, help="Train the vocabulary on at most this many lines (sampled)."),
    force: bool = typer.Option(False, "--force", help="Overwrite a non-empty OUTPUT_DIR."),
) -> None:
    """Save a T5 backbone with random weights and a T5-style vocabulary as a local HF model directory.

    The directory (config.json, model.safetensors, tokenizer files) loads offline with AutoModelForSeq2SeqLM.from_pretrained and can be a pipeline's backbone. Give exactly one of --vocab and --train-text. The last line is `shape=... parameters=... vocab_size=...`.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSeq2SeqLM
    from wasabi import msg

    from .pretraining.backbone_init import count_parameters, init_backbone
    from .sentt.tokenizer import load_tokenizer

    if shape not in SHAPES:
        raise typer.BadParameter(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}", param_hint="'--shape'")
    try:
        path = init_backbone(
            output_dir, shape, vocab=vocab, train_text=train_text or (), vocab_size=vocab_size, seed=seed,
            force=force, max_sentences=max_sentences, log=msg.info, progress=True,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        _fail(str(err))
    # read the directory back: the counts are those of what was saved
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    with torch.device("meta"):
        n_params = count_parameters(AutoModelForSeq2SeqLM.from_config(config))
    n_vocab = len(load_tokenizer(path))
    msg.good(f"Saved a {shape} T5 backbone with random weights to {path}")
    typer.echo(f"shape={shape} parameters={n_params} vocab_size={n_vocab}")


@app.command()
def pretrain(
    backbone: Path = typer.Argument(..., help="The T5 model directory to pretrain (made by init-backbone)."),
    output_dir: Path = typer.Argument(..., metavar="OUTPUT_DIR", help="Where the pretrained model, pretrain.json and checkpoint/ go."),
    text: list[Path] = typer.Option(
        ..., "--text",
        help="Unlabelled training text (repeatable): .txt files, directories (of .txt, .spacy, .zip files), .spacy DocBins "
        "(train splits), NLTK corpus .zip files.",
    ),
    steps: int = typer.Option(10_000, "--steps", min=1, help="Stop after this many optimizer steps in total."),
    max_minutes: float = typer.Option(0.0, "--max-minutes", min=0, help="Also stop after this many minutes (0: no limit)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Examples per step."),
    input_length: int = typer.Option(128, "--input-length", min=3, help="Encoder tokens per packed example (T5: 512)."),
    lr: float = typer.Option(1e-3, "--lr", min=0, help="Peak AdamW learning rate (warm-up, then 1/sqrt(step) decay)."),
    warmup_steps: int = typer.Option(200, "--warmup-steps", min=0, help="Linear warm-up steps."),
    dropout: float = typer.Option(0.0, "--dropout", min=0, max=1, help="Dropout while pretraining."),
    noise_density: float = typer.Option(0.15, "--noise-density", help="Share of tokens hidden (T5: 0.15)."),
    mean_span_length: float = typer.Option(3.0, "--mean-span-length", help="Mean length of a hidden span (T5: 3)."),
    eval_every: int = typer.Option(200, "--eval-every", min=1, help="Held-out loss every this many steps."),
    eval_examples: int = typer.Option(64, "--eval-examples", min=0, help="Held-out examples (0: no evaluation)."),
    eval_fraction: float = typer.Option(0.01, "--eval-fraction", min=0, max=0.99, help="Share of text lines held out."),
    save_every: int = typer.Option(200, "--save-every", min=1, help="Checkpoint every this many steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data order, the noise and dropout."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    bf16: bool = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast (default: on for CUDA, off on the CPU)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's default)."),
    restart: bool = typer.Option(False, "--restart", help="Start over even if OUTPUT_DIR holds a checkpoint (overwrites it)."),
    allow_eval_splits: bool = typer.Option(False, "--allow-eval-splits", help="Accept text files named like dev/test splits."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Pretrain a T5 backbone with span corruption (15% noise, mean span 3, T5's sentinels) on local text.

    The text is streamed and packed into fixed-length examples. OUTPUT_DIR becomes an HF model directory a pipeline can name as its backbone. Ctrl-C (or SIGTERM) finishes the step, saves a checkpoint and stops; running the same command again resumes without losing a step. The last line is `steps=... tokens=... tokens_per_second=... held_out_loss=BEFORE->AFTER`.
    """
    import torch
    from wasabi import msg

    from .pretraining import PretrainConfig
    from .pretraining import pretrain as run_pretraining

    if threads:
        torch.set_num_threads(threads)
    try:
        config = PretrainConfig(
            steps=steps, max_minutes=max_minutes, batch_size=batch_size, input_length=input_length, lr=lr,
            warmup_steps=warmup_steps, dropout=dropout, noise_density=noise_density,
            mean_noise_span_length=mean_span_length, eval_every=eval_every, eval_examples=eval_examples,
            eval_fraction=eval_fraction, save_every=save_every, seed=seed, device=device, bf16=bf16,
        )
        state = run_pretraining(
            backbone, text, output_dir, config, resume=not restart, allow_eval_splits=allow_eval_splits,
            progress=progress, log=msg.info,
        )
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        _fail(str(err))
    losses = [e["loss"] for e in state.eval_loss]
    held_out = f"{losses[0]:.4f}->{losses[-1]:.4f}" if losses else "n/a"
    if not state.run["interrupted"]:
        msg.good(f"Saved the pretrained backbone to {output_dir}")
    typer.echo(f"steps={state.step} tokens={state.tokens} tokens_per_second={state.tokens_per_second:.0f} held_out_loss={held_out}")
    if state.run["interrupted"]:
        raise typer.Exit(130)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def diagnose(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="A spacy train config with a hyperloader component."),
    output_dir: Path = typer.Argument(..., metavar="OUTPUT_DIR", help="Where curves.json and curves.png go."),
    steps: int = typer.Option(1000, "--steps", min=1, help="Training steps."),
    every: int = typer.Option(100, "--every", min=1, help="Measure every this many steps."),
    slice_size: int = typer.Option(64, "--slice", min=1, help="Training docs the accuracies are measured on."),
    component: str = typer.Option("hyperloader", "--component", help="The hyperloader pipe's name."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's default)."),
) -> None:
    """Train a config as `spacy train` does and plot its learning curves (loss, teacher-forced and
    decoded accuracy on a training slice, dev scores, attention on the own word).

    Config overrides follow, as for `spacy train`: `--paths.train corpus/train.spacy ...`. Teacher-forced
    accuracy high but decoded accuracy low means a decoding bug; both low means slow learning.
    """
    import torch

    from .pipeline.diagnostics import parse_overrides, run_diagnostics

    if threads:
        torch.set_num_threads(threads)
    if not config.is_file():
        _fail(f"{config} is not a file; give a spacy train config (.cfg).")
    try:
        points = run_diagnostics(
            config, output_dir, overrides=parse_overrides(ctx.args), steps=steps, every=every,
            slice_size=slice_size, component=component,
        )
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"wrote {output_dir / 'curves.json'} and {output_dir / 'curves.png'} ({len(points)} points)")
