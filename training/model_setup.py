"""The network as the trainer runs it: built for the recipe, optionally initialised from
other weights, with the recipe's BatchNorm settings, on its device and memory layout, wrapped
for DDP and `torch.compile`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from training.distributed import DistInfo
from training.recipes import Recipe


def build_training_model(
    r: Recipe,
    num_classes: int,
    dist_info: DistInfo,
    init: Callable[[nn.Module], None] | None = None,
) -> tuple[nn.Module, nn.Module, bool]:
    """`(module, model, channels_last)`: the network (its weights, for checkpoints), what the
    loop calls (DDP / compiled wrapper, or the network itself) and whether inputs go NHWC.

    Call with the global RNG seeded alike on every rank (same initial weights); `init`
    (fine-tuning) loads other weights into the fresh network. Re-seeds per rank afterwards
    (dropout differs across ranks)."""
    from zoo.models import build_model

    model = build_model(
        r.arch,
        num_classes,
        aux_loss=r.aux_loss,
        pretrained_backbone=r.pretrained_backbone and not r.init,
    )
    if init is not None:  # a resumed run gets its weights from the checkpoint instead
        init(model)
    if r.bn_momentum > 0:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = r.bn_momentum
    torch.manual_seed(r.seed + dist_info.rank)  # e.g. dropout differs across ranks
    if r.sync_bn and dist_info.distributed:
        if dist_info.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif dist_info.is_main:  # torch's SyncBatchNorm runs on GPUs only
            print("sync_bn: SyncBatchNorm needs CUDA; using per-process BatchNorm on the CPU")
    model.to(dist_info.device)
    cuda = dist_info.device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = r.cudnn_benchmark  # fixed crops: autotune once
    channels_last = cuda and r.channels_last
    if channels_last:  # NHWC: tensor-core convolutions without layout transposes
        model.to(memory_format=torch.channels_last)
    module = model
    wrapped: nn.Module = model
    if dist_info.distributed:
        ids = [dist_info.device.index] if cuda else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if r.compile:
        wrapped = torch.compile(wrapped)
    return module, wrapped, channels_last
