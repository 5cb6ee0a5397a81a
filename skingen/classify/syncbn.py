"""BatchNorm over the global batch of several processes, on any device and backend (gloo included).

torch's ``SyncBatchNorm`` runs on GPUs only; on CPU processes BatchNorm would otherwise normalise each process's
share of the batch by its own statistics, so training would change with the number of processes. Here the
batch sums are all-reduced across processes by a differentiable all-reduce (its backward sums the
gradients likewise), which is what ``SyncBatchNorm`` computes. Conversion keeps every module, parameter and
buffer name, so a state saved on 1 process loads on N and back.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from timm.layers import BatchNormAct2d


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward sums the incoming gradients over the processes likewise: every process's
    loss depends on every process's share of the statistics."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over the processes, differentiable."""
    return _SumOverProcesses.apply(x)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _global_norm(bn: torch.nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Normalise (N, C, ...) ``x`` by the mean and biased variance over every process's batch (two passes, in
    float32 at least) and update the running statistics as BatchNorm does (unbiased variance of the global batch)."""
    dims = [0, *range(2, x.dim())]
    x32 = x if x.dtype in (torch.float32, torch.float64) else x.float()
    count = x32.new_tensor([x.numel() / x.shape[1]])
    summed = all_reduce(torch.cat([x32.sum(dims), count]))
    n = summed[-1]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    centred = x32 - (summed[:-1] / n).view(shape)
    var = all_reduce((centred * centred).sum(dims)) / n
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            bn.running_mean.lerp_((summed[:-1] / n).to(bn.running_mean.dtype), factor)
            bn.running_var.lerp_((var * n / (n - 1).clamp(min=1)).to(bn.running_var.dtype), factor)
    out = centred * torch.rsqrt(var + bn.eps).view(shape)
    if bn.affine:
        out = out * bn.weight.view(shape) + bn.bias.view(shape)
    return out.to(x.dtype)


def _synced(bn: torch.nn.Module) -> bool:
    return bn.training and _world() > 1


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics cover every process's batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _global_norm(self, x) if _synced(self) else super().forward(x)


class GlobalBatchNormAct2d(BatchNormAct2d):
    """timm's ``BatchNormAct2d`` (EfficientNet) whose training statistics cover every process's batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(_global_norm(self, x))) if _synced(self) else super().forward(x)


GLOBAL = {torch.nn.BatchNorm2d: GlobalBatchNorm2d, BatchNormAct2d: GlobalBatchNormAct2d}


def convert_global_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every BatchNorm2d / BatchNormAct2d normalising over the global batch (in place: the class
    of each such module is swapped, its parameters, buffers and names kept)."""
    for module in model.modules():
        if type(module) in GLOBAL:
            module.__class__ = GLOBAL[type(module)]
    return model


def convert_sync_batchnorm(model: torch.nn.Module, device_type: str) -> torch.nn.Module:
    """torch's fused ``SyncBatchNorm`` on CUDA (timm's converter, which keeps BatchNormAct2d's activation),
    :class:`GlobalBatchNorm2d` elsewhere."""
    if device_type == "cuda":
        from timm.layers import convert_sync_batchnorm as timm_convert

        return timm_convert(model)
    return convert_global_batchnorm(model)


def batchnorm_kind(model: torch.nn.Module) -> str:
    """Which BatchNorm a (converted) model runs: for train_summary.json."""
    names = {type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    return ", ".join(sorted(names)) or "none"
