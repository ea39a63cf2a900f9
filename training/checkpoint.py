"""Training checkpoints as safetensors (no pickle): modules, optimizers, step, RNG state and run config.

Layout of one file: tensors ``module/<name>/<param>`` and ``optim/<name>/<index>/<state>``, ``rng/torch``;
metadata ``step``, ``config`` (JSON), ``optim/<name>/meta`` (JSON of param_groups and scalar state) and any
extra string entries a phase adds (e.g. ``scaler/<name>``, the fp16 loss-scaler state).
Written atomically so that a kill mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from srgan_fast.io.atomic import atomic_output


def _optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"optim/{name}/{index}/{key}"] = value.detach().contiguous()
            else:
                scalars[f"{index}/{key}"] = float(value)
    meta = json.dumps({"param_groups": state["param_groups"], "scalars": scalars})
    return tensors, meta


def _load_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: dict, meta: str) -> None:
    info = json.loads(meta)
    state: dict[int, dict] = {}
    prefix = f"optim/{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix):].split("/", 1)
            state.setdefault(int(index), {})[field] = value
    for key, value in info["scalars"].items():
        index, field = key.split("/", 1)
        state.setdefault(int(index), {})[field] = torch.tensor(value)
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def save_checkpoint(path: str | Path, step: int, config: dict, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], extra_metadata: dict[str, str] | None = None) -> None:
    tensors: dict[str, torch.Tensor] = {}
    metadata = {"step": str(step), "config": json.dumps(config), **(extra_metadata or {})}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"module/{name}/{key}"] = value.detach().cpu().contiguous()
    for name, optimizer in optimizers.items():
        optim_tensors, metadata[f"optim/{name}/meta"] = _optimizer_tensors(name, optimizer)
        tensors.update({k: v.cpu() for k, v in optim_tensors.items()})
    tensors["rng/torch"] = torch.get_rng_state()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_raw_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def is_checkpoint(path: str | Path) -> bool:
    """A training checkpoint (as opposed to an exported weights file, another safetensors file or no such file)."""
    try:
        meta = read_raw_metadata(path)
    except (SafetensorError, OSError):
        return False
    return "step" in meta and "config" in meta


def read_checkpoint_meta(path: str | Path) -> dict:
    meta = read_raw_metadata(path)
    return {"step": int(meta["step"]), "config": json.loads(meta["config"])}


def load_module_state(path: str | Path, name: str) -> dict[str, torch.Tensor]:
    prefix = f"module/{name}/"
    return {k[len(prefix):]: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}


def load_checkpoint(path: str | Path, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer]) -> int:
    """Restore modules, optimizers and the torch RNG; returns the step to continue from."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    for name, module in modules.items():
        prefix = f"module/{name}/"
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        _load_optimizer(name, optimizer, tensors, metadata[f"optim/{name}/meta"])
    torch.set_rng_state(tensors["rng/torch"])
    return int(metadata["step"])
