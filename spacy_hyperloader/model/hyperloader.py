"""A frozen T5-family backbone adapted per task by hypernetwork-generated modules."""

from __future__ import annotations

import functools
import json
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import PreTrainedModel

from .architectures import architecture_for
from .backbone import build_backbone, load_backbone
from .config import ADAPTER_SITES, HyperLoaderConfig
from .files import read_json, require, verify_checksums, write_checksums
from .generated import RowGroups, adapter, lora_delta
from .hypernetwork import SiteWeights, StackHypernetwork
from .position_bias import plain_state_dict, scale_position_bias

CONFIG_NAME = "hyperloader.json"
WEIGHTS_NAME = "hyperloader.safetensors"
BACKBONE_DIR = "backbone"
FORMAT_VERSION = 1


# Per-call state lives in the calling thread, never on the shared module: many threads may run
# one model at once (a web service calling one `nlp`), each inside its own task_context.
_THREAD = threading.local()
_CACHE_LOCK = threading.Lock()


@dataclass
class _TaskContext:
    weights: dict[str, dict[str, SiteWeights]]  # stack -> site -> name -> (tasks, layers, ...)
    groups: RowGroups


class HyperLoaderModel(nn.Module):
    """The backbone runs inside ``task_context(task_ids)``; hooks add each row's task modules.

    In eval mode with gradients off, each task's generated weights are computed once and reused:
    decoding then costs what the plain backbone costs. The cache is dropped after any forward that can
    train (train mode or gradients on), when weights are loaded, and when a parameter is replaced
    or moved; a parameter changed in place with no such forward (by hand) needs
    ``invalidate_generated_weights()``.
    ``regenerating_every_forward()`` switches to the authors' cost instead.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        config: HyperLoaderConfig,
        *,
        backbone_source: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.backbone_source = backbone_source
        self.architecture = architecture_for(backbone.config.model_type)
        arch, bc = self.architecture, backbone.config
        self.task_embedding = nn.Embedding(len(config.tasks), config.task_embedding_dim)
        nn.init.normal_(self.task_embedding.weight, std=1.0)
        self.hypernetworks = nn.ModuleDict()
        if config.variant_spec.generates_modules:
            for stack in arch.blocks:
                stack_sites = tuple(s for s in config.variant_spec.sites if stack in arch.sites.get(s, {}))
                self.hypernetworks[stack] = StackHypernetwork(
                    config, n_layers=arch.n_layers(bc, stack), d_model=arch.d_model(bc),
                    attention_dim=arch.attention_dim(bc), stack_sites=stack_sites,
                )
        else:
            # Full fine-tuning: no hypernetwork, no hook; task ids are still checked but change
            # nothing, so the (unused) task embedding is frozen rather than trained or saved.
            self.task_embedding.weight.requires_grad_(False)
        if config.position_bias_scale != 1.0 and arch.position_bias is not None:
            scale_position_bias(backbone, arch.position_bias.embedding, config.position_bias_scale)
        self._freeze_backbone()
        self._regenerating = False
        self.quantized = False
        self._cache: dict[int, dict[str, dict[str, SiteWeights]]] = {}
        self._cache_key: tuple | None = None
        self._cache_stale = False
        self._inject()

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_backbone_config(cls, backbone_config: Any, config: HyperLoaderConfig) -> "HyperLoaderModel":
        """Random backbone weights; the backbone is saved with the model since nothing can reload it."""
        return cls(build_backbone(backbone_config), config)

    @classmethod
    def from_backbone(cls, source: str | Path, config: HyperLoaderConfig) -> "HyperLoaderModel":
        """A pretrained backbone from a local directory or a hub name."""
        return cls(load_backbone(source), config, backbone_source=str(source))

    def _freeze_backbone(self) -> None:
        cfg = self.config
        for name, param in self.backbone.named_parameters():
            trainable = cfg.train_backbone or (
                cfg.train_backbone_layer_norms and self.architecture.is_layer_norm(name)
            )
            param.requires_grad_(trainable)

    def _inject(self) -> None:
        for stack, hyper in self.hypernetworks.items():
            for layer, block in enumerate(self.architecture.blocks_of(self.backbone, stack)):
                for site in hyper.stack_sites:
                    module = self.architecture.site_module(block, site, stack)
                    # A partial of a bound method survives deepcopy and pickling, unlike a closure.
                    module.register_forward_hook(functools.partial(self._site_hook, stack, layer, site))

    # ----------------------------------------------------------------- task context
    @property
    def task_names(self) -> list[str]:
        return list(self.config.tasks)

    @property
    def _context(self) -> _TaskContext | None:
        """This thread's innermost task context for this model (None outside one)."""
        return getattr(_THREAD, "contexts", {}).get(id(self))

    @_context.setter
    def _context(self, context: _TaskContext | None) -> None:
        contexts = getattr(_THREAD, "contexts", None)
        if contexts is None:
            contexts = _THREAD.contexts = {}
        if context is None:
            contexts.pop(id(self), None)
        else:
            contexts[id(self)] = context

    @contextmanager
    def task_context(self, task_ids: Tensor | Sequence[int]) -> Iterator[None]:
        """Run the backbone (forward, encoder, decoder, ``generate``) with one task per row."""
        ids = torch.as_tensor(task_ids, dtype=torch.long, device=self.task_embedding.weight.device)
        if ids.dim() != 1 or ids.numel() == 0:
            raise ValueError(f"task_ids must be a non-empty 1-d sequence, got shape {tuple(ids.shape)}.")
        n = len(self.config.tasks)
        if int(ids.min()) < 0 or int(ids.max()) >= n:
            bad = [int(i) for i in ids.tolist() if not 0 <= i < n]
            raise ValueError(f"task ids {sorted(set(bad))} out of range: this model has {n} tasks.")
        groups = RowGroups.from_task_ids(ids)
        previous = self._context
        # While regenerating, each stack's weights are made when that stack runs (_regenerate).
        weights = {} if self._regenerating else self.generated_weights(groups.unique)
        self._context = _TaskContext(weights, groups)
        try:
            yield
        finally:
            self._context = previous

    @contextmanager
    def regenerating_every_forward(self) -> Iterator[None]:
        """Regenerate the generated weights at every stack forward inside the block, uncached.

        This is the authors' cost: their hypernetwork runs in each forward pass, so the encoder
        pays one generation and the decoder one per decoding step. Outputs are those of the
        cached path (up to float rounding: a batch's tasks are generated together rather than
        one at a time); benchmarks use it to measure what the cache saves.
        """
        if self._regenerating:
            yield
            return
        handles = [
            self.architecture.blocks_of(self.backbone, stack)[0].register_forward_pre_hook(
                functools.partial(self._regenerate, stack)
            )
            for stack in self.hypernetworks
        ]
        self._regenerating = True
        try:
            yield
        finally:
            self._regenerating = False
            for handle in handles:
                handle.remove()

    def _regenerate(self, stack: str, module: nn.Module, args: tuple) -> None:
        """Before a stack's first block: that stack's weights for the active context's tasks."""
        ctx = self._context
        if ctx is not None:  # outside a context, the site hooks raise the informative error
            fresh = self.hypernetworks[stack](self.task_embedding(ctx.groups.unique))
            ctx.weights = {**ctx.weights, stack: fresh}  # a new dict: a cached entry stays untouched

    def generated_weights(self, task_ids: Tensor) -> dict[str, dict[str, SiteWeights]]:
        """stack -> site -> weights with a leading task axis, in the order of ``task_ids``."""
        if self.training or torch.is_grad_enabled():
            self._cache_stale = True  # a forward that can train: an optimizer step may follow
            return self._generate(task_ids)
        key = self._parameter_versions()
        per_task = []
        with _CACHE_LOCK:  # threads share the cache; generating a task's weights is brief
            if self._cache_stale or key != self._cache_key:
                self.invalidate_generated_weights()
                self._cache_key = key
            for task in task_ids.tolist():
                if task not in self._cache:
                    self._cache[task] = self._generate(task_ids.new_tensor([task]))
                per_task.append(self._cache[task])
        if len(per_task) == 1:
            return per_task[0]
        return {
            stack: {
                site: {name: torch.cat([w[stack][site][name] for w in per_task]) for name in tensors}
                for site, tensors in sites.items()
            }
            for stack, sites in per_task[0].items()
        }

    def invalidate_generated_weights(self) -> None:
        """Forget cached per-task weights: needed after changing parameters in place while the
        model stays in eval mode (see the class docstring)."""
        self._cache.clear()
        self._cache_key = None
        self._cache_stale = False

    def _generate(self, task_ids: Tensor) -> dict[str, dict[str, SiteWeights]]:
        vectors = self.task_embedding(task_ids)
        return {stack: hyper(vectors) for stack, hyper in self.hypernetworks.items()}

    def _parameter_versions(self) -> tuple:
        """Identity of the tensors behind the parameters: a replaced or moved one invalidates."""
        params = [self.task_embedding.weight, *self.hypernetworks.parameters()]
        return tuple((p.data_ptr(), p.device, p.dtype) for p in params)

    def _site_hook(self, stack: str, layer: int, site: str, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        ctx = self._context
        if ctx is None:
            raise RuntimeError(
                "The HyperLoader backbone was called outside `model.task_context(task_ids)`; "
                "call it through HyperLoaderModel so each row gets its task's modules."
            )
        weights = ctx.weights[stack][site]

        def layer_weights(g: int) -> dict[str, Tensor]:
            return {name: w[g, layer] for name, w in weights.items()}

        if site in ADAPTER_SITES:
            eps = self.config.adapter_layer_norm_eps
            return ctx.groups.apply(output, lambda y, g: adapter(y, layer_weights(g), eps))
        scale = self.config.lora_scale
        return output + ctx.groups.apply(args[0], lambda x, g: lora_delta(x, layer_weights(g), scale))

    # ----------------------------------------------------------------- computation
    def forward(self, task_ids: Tensor | Sequence[int], **backbone_kwargs: Any) -> Any:
        """The backbone's own forward (``labels=`` gives its full-vocabulary loss) under task ids."""
        with self.task_context(task_ids):
            return self.backbone(**backbone_kwargs)

    def encode(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Encoder states; call inside ``task_context``."""
        return self.backbone.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def project(self, hidden: Tensor, vocab_ids: Tensor | None = None) -> Tensor:
        """Logits over the whole vocabulary or only over ``vocab_ids`` (restricted softmax)."""
        weight = self.backbone.get_output_embeddings().weight
        if vocab_ids is not None:
            weight = weight.index_select(0, vocab_ids)
        return F.linear(self.architecture.output_states(self.backbone.config, hidden), weight)

    def project_rows(self, hidden: Tensor, token_ids: Tensor) -> Tensor:
        """One logit per row: row i of ``hidden`` (batch, d_model) scored for ``token_ids[i]``."""
        weight = self.backbone.get_output_embeddings().weight.index_select(0, token_ids)
        return (self.architecture.output_states(self.backbone.config, hidden) * weight).sum(dim=-1)

    def sequence_logits(
        self,
        task_ids: Tensor | Sequence[int],
        input_ids: Tensor,
        attention_mask: Tensor,
        decoder_input_ids: Tensor,
        *,
        vocab_ids: Tensor | None = None,
        attentions: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Teacher-forced logits (batch, target length, vocabulary or ``len(vocab_ids)``); with
        ``attentions``, also each encoder layer's self-attention (batch, heads, source, source) and
        each decoder layer's cross-attention (batch, heads, target, source)."""
        with self.task_context(task_ids):
            encoder = self.backbone.get_encoder()(
                input_ids=input_ids, attention_mask=attention_mask, output_attentions=attentions
            )
            out = self.backbone.get_decoder()(
                input_ids=decoder_input_ids,
                encoder_hidden_states=encoder.last_hidden_state,
                encoder_attention_mask=attention_mask,
                use_cache=False,
                output_attentions=attentions,
            )
        logits = self.project(out.last_hidden_state, vocab_ids)
        return (logits, encoder.attentions, out.cross_attentions) if attentions else logits

    # ----------------------------------------------------------------- parameters
    def quantize_int8(self) -> None:
        """Dynamic int8 quantization of the backbone's block linear layers, for CPU inference.

        The generated modules stay in float (their hooks move to the quantized layers with
        them), and so do the embeddings and the output layer, which decoding reads by row.
        A quantized model cannot train: ``loss`` refuses it."""
        with warnings.catch_warnings():
            # torch.ao.quantization is deprecated in favour of torchao, which is not a dependency
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            from torch.ao.quantization import quantize_dynamic

            for stack in ("encoder", "decoder"):
                for block in self.architecture.blocks_of(self.backbone, stack):
                    quantize_dynamic(block, {nn.Linear}, dtype=torch.qint8, inplace=True)
        self.quantized = True
        self.invalidate_generated_weights()

    def set_dropout(self, rate: float) -> None:
        """Set every dropout rate of the model (spaCy's ``drop``: the authors train with 0.1)."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {rate!r}.")
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = rate

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total), each shared tensor counted once."""
        params = list(self.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    # ----------------------------------------------------------------- save / load
    def save_pretrained(self, path: str | Path, *, save_backbone: bool | None = None) -> None:
        """Trainable weights (safetensors) + JSON naming the backbone; the backbone itself when
        nothing else could reload it (random init, trained backbone) or when asked."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if save_backbone is None:
            save_backbone = self.backbone_source is None or self.config.train_backbone
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.trainable_state_dict().items()}
        save_file(tensors, str(path / WEIGHTS_NAME), metadata={"format": "pt"})
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "backbone_source": self.backbone_source,
            "backbone_config": self.backbone.config.to_dict(),
        }
        (path / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf8")
        if save_backbone:
            self.backbone.save_pretrained(
                str(path / BACKBONE_DIR), safe_serialization=True, state_dict=plain_state_dict(self.backbone)
            )
        write_checksums(path)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, backbone_source: str | Path | None = None, local_only: bool = False
    ) -> "HyperLoaderModel":
        """Load what ``save_pretrained`` wrote; ``backbone_source`` overrides where the backbone
        comes from. With ``local_only`` (a saved pipeline) everything must be inside ``path``:
        a missing part is an error naming it, never a look elsewhere (the hub, the current folder)."""
        path = Path(path)
        meta_path = path / CONFIG_NAME
        if not meta_path.is_file():
            raise FileNotFoundError(f"No {CONFIG_NAME} in {str(path)!r}: not a saved HyperLoader model.")
        meta = read_json(meta_path, what="the HyperLoader model's settings")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path} has format_version {meta.get('format_version')!r}; this version of "
                f"spacy-hyperloader reads {FORMAT_VERSION}."
            )
        verify_checksums(path)
        config = HyperLoaderConfig.from_dict(meta["config"])
        source = backbone_source or meta.get("backbone_source")
        saved = path / BACKBONE_DIR
        if local_only or (backbone_source is None and saved.is_dir()):
            require(saved, what="the saved backbone")
            require(saved / "config.json", what="the saved backbone's config")
            backbone = load_backbone(saved)
        elif source is not None:
            backbone = load_backbone(source)
        else:
            raise FileNotFoundError(
                f"{str(path)!r} has no saved backbone and names no backbone source; pass "
                f"backbone_source= (a local model directory or hub name)."
            )
        model = cls(backbone, config, backbone_source=meta.get("backbone_source"))
        model.load_trainable(load_file(str(path / WEIGHTS_NAME)))
        return model

    def load_trainable(self, tensors: dict[str, Tensor]) -> None:
        expected = self.trainable_state_dict()
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"Saved HyperLoader weights do not fit this model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}. Was it saved with another variant or backbone?"
            )
        with torch.no_grad():
            for name, param in expected.items():
                if tensors[name].shape != param.shape:
                    raise ValueError(
                        f"Weight {name!r} has shape {tuple(tensors[name].shape)} in the file but "
                        f"{tuple(param.shape)} in the model."
                    )
                param.copy_(tensors[name])
        self.invalidate_generated_weights()
