"""Telling CUDA out-of-memory errors from other CUDA errors, for every library we host.

Works from the exception's type name and message, so it needs neither torch nor CTranslate2
imported: torch raises `torch.cuda.OutOfMemoryError` (or a RuntimeError mentioning it on
older paths), cuBLAS and cuDNN report allocation failures in their status names, and
CTranslate2 raises RuntimeError("... out of memory").
"""

from __future__ import annotations

from swictation.domain.recovery import ErrorKind

_OOM_MARKERS = (
    "out of memory",
    "outofmemory",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "cudnn_status_not_enough_workspace",
    "cuda_error_out_of_memory",
    "cudaerrormemoryallocation",
    "failed to allocate",
)
_CUDA_MARKERS = ("cuda", "cublas", "cudnn", "nvrtc", "cufft", "curand", "nccl", "device-side")


def classify_cuda_error(error: BaseException) -> ErrorKind:
    names = " ".join(cls.__name__.lower() for cls in type(error).__mro__)
    text = f"{names} {error}".lower()
    if "outofmemoryerror" in names or any(marker in text for marker in _OOM_MARKERS):
        return ErrorKind.OUT_OF_MEMORY
    if "acceleratorerror" in names or any(marker in text for marker in _CUDA_MARKERS):
        return ErrorKind.CUDA
    return ErrorKind.OTHER
