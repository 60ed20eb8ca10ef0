"""Command line: ``python -m spacy_hyperloader COMMAND``."""

from __future__ import annotations

from pathlib import Path

import typer

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
    variant: str = typer.Option("hyperloader", "--variant", help="hyperloader, adapters_only, lora_only or lora_per_site."),
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
    typer.echo(f"variant={hl_config.variant} layers={backbone_config.num_layers}+{backbone_config.num_decoder_layers} d_model={backbone_config.d_model}")
    typer.echo(f"trainable={trainable} total={total} percent={100 * trainable / total:.4f}")
