"""Generate ``docs/api.md``, the PyTorch API trainkit covers: ``python -m trainkit.docs_api [--check]``.

The names are a curated list of what PyTorch programs commonly use, per namespace
(``torch``, ``torch.Tensor``, ``torch.nn``, ``torch.nn.functional``, ``torch.optim``,
``torch.optim.lr_scheduler``, ``torch.utils.data``, and torchvision's parts); whether each is
covered is read from trainkit itself (an attribute of the mirrored module or class), and its
YAML name from the declarations. A name that is not covered must carry a reason here, so the
page says what is left out and why. ``--check`` exits 1 when the page is stale (a test runs it).
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

__all__ = ["NAMESPACES", "NOT_COVERED", "NOTES", "render", "main"]

PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"

#: (PyTorch namespace, trainkit module or "Tensor", {group: names}).
NAMESPACES: list[tuple[str, str, dict[str, str]]] = [
    ("torch", "trainkit", {
        "creation": "tensor as_tensor from_numpy zeros ones full empty zeros_like ones_like full_like empty_like "
                    "rand rand_like randn randn_like randint randint_like randperm arange linspace logspace eye "
                    "complex polar",
        "math": "abs neg sign exp log log1p log2 log10 expm1 sqrt rsqrt pow square sin cos tan asin acos atan atan2 "
                "sinh cosh tanh sigmoid erf erfinv floor ceil round trunc frac clamp clip reciprocal lerp "
                "maximum minimum fmod remainder add sub mul div true_divide floor_divide matmul",
        "reductions": "sum mean prod std var norm max min amax amin argmax argmin all any logsumexp cumsum cumprod "
                      "median mode std_mean var_mean count_nonzero",
        "comparison": "eq ne gt lt ge le equal allclose isclose isnan isinf isfinite logical_and logical_or "
                      "logical_not logical_xor where",
        "indexing": "gather scatter scatter_add index_select masked_fill masked_select take_along_dim nonzero argwhere "
                    "sort argsort topk kthvalue unique searchsorted bucketize",
        "shape": "cat concat stack reshape flatten squeeze unsqueeze transpose permute split chunk unbind tril triu "
                 "diag flip roll repeat_interleave narrow movedim tile broadcast_to meshgrid",
        "linear algebra": "mm bmm addmm baddbmm dot outer einsum trace cdist",
        "random": "manual_seed seed initial_seed get_rng_state set_rng_state Generator normal bernoulli multinomial "
                  "poisson",
        "autograd": "no_grad enable_grad set_grad_enabled is_grad_enabled inference_mode autograd",
        "types and devices": "Tensor dtype float32 float64 float16 bfloat16 int64 int32 uint8 bool long float double "
                             "device Size set_default_dtype get_default_dtype cuda backends accelerator is_tensor "
                             "numel set_printoptions FloatTensor DoubleTensor LongTensor IntTensor BoolTensor",
        "serialization": "save load serialization.safe_globals serialization.add_safe_globals",
        "submodules": "nn optim utils",
        "compilation and acceleration": "compile jit cuda.amp autocast",
        "other subsystems": "fft linalg sparse_coo_tensor distributed onnx quantization",
    }),
    ("torch.Tensor", "Tensor", {
        "conversion": "item tolist numpy to cpu cuda double float half long int bool type type_as clone detach "
                      "detach_ contiguous is_contiguous stride",
        "shape": "shape size dim ndim numel view view_as reshape reshape_as flatten squeeze unsqueeze transpose t T "
                 "permute expand expand_as repeat split chunk narrow flip roll movedim unfold",
        "math": "abs neg exp log sqrt pow sigmoid tanh relu clamp clamp_ sum mean std var prod norm max min argmax "
                "argmin cumsum softmax log_softmax matmul mm bmm addmm baddbmm dot lerp",
        "comparison and indexing": "eq ne gt lt ge le isnan any all gather scatter scatter_ index_select masked_fill "
                                   "masked_fill_ masked_select nonzero sort topk unique where",
        "in place": "add_ sub_ mul_ div_ zero_ fill_ copy_ uniform_ normal_ clamp_ requires_grad_",
        "autograd": "backward grad requires_grad grad_fn is_leaf retain_grad register_hook",
        "creation": "new_zeros new_ones new_full new_empty new_tensor",
        "other": "device dtype is_floating_point element_size get_device is_cuda data_ptr to_sparse",
    }),
    ("torch.nn", "trainkit.nn", {
        "containers": "Module Sequential ModuleList ModuleDict Parameter ParameterList ParameterDict",
        "linear and convolution": "Linear Bilinear Identity Flatten Unflatten Conv1d Conv2d Conv3d ConvTranspose2d",
        "pooling": "MaxPool1d MaxPool2d AvgPool1d AvgPool2d AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveMaxPool2d",
        "normalisation": "BatchNorm1d BatchNorm2d LayerNorm GroupNorm InstanceNorm1d InstanceNorm2d",
        "dropout": "Dropout Dropout1d Dropout2d Dropout3d AlphaDropout",
        "activations": "ReLU LeakyReLU GELU Sigmoid Tanh Softmax LogSoftmax SiLU ELU SELU CELU PReLU Softplus Mish "
                       "Hardswish Hardsigmoid Hardtanh ReLU6 Softsign Tanhshrink Threshold GLU",
        "losses": "MSELoss L1Loss CrossEntropyLoss NLLLoss BCELoss BCEWithLogitsLoss SmoothL1Loss HuberLoss "
                  "KLDivLoss CosineEmbeddingLoss MarginRankingLoss TripletMarginLoss CTCLoss PoissonNLLLoss "
                  "GaussianNLLLoss MultiLabelSoftMarginLoss",
        "sequence": "Embedding EmbeddingBag RNN LSTM GRU RNNCell LSTMCell GRUCell MultiheadAttention Transformer "
                    "TransformerEncoder TransformerEncoderLayer TransformerDecoder TransformerDecoderLayer",
        "utilities": "init utils functional modules.rnn.LSTM modules.linear.Linear Upsample PixelShuffle DataParallel",
    }),
    ("torch.nn.functional", "trainkit.nn.functional", {
        "activations": "relu leaky_relu gelu sigmoid tanh softmax log_softmax silu elu selu celu softplus mish "
                       "hardswish hardtanh relu6 prelu glu logsigmoid softsign",
        "layers": "linear conv1d conv2d conv_transpose2d max_pool2d avg_pool2d adaptive_avg_pool2d "
                  "adaptive_max_pool2d batch_norm layer_norm group_norm instance_norm dropout dropout1d dropout2d "
                  "dropout3d embedding scaled_dot_product_attention",
        "losses": "cross_entropy nll_loss mse_loss l1_loss binary_cross_entropy binary_cross_entropy_with_logits "
                  "smooth_l1_loss huber_loss kl_div cosine_embedding_loss margin_ranking_loss triplet_margin_loss "
                  "ctc_loss",
        "utilities": "pad one_hot normalize interpolate cosine_similarity pairwise_distance grid_sample unfold fold",
    }),
    ("torch.optim", "trainkit.optim", {
        "optimizers": "SGD Adam AdamW RMSprop Adagrad Adadelta Adamax NAdam RAdam LBFGS ASGD Rprop SparseAdam",
        "base": "Optimizer lr_scheduler",
    }),
    ("torch.optim.lr_scheduler", "trainkit.optim.lr_scheduler", {
        "schedulers": "LRScheduler StepLR MultiStepLR ExponentialLR CosineAnnealingLR LinearLR OneCycleLR "
                      "SequentialLR ChainedScheduler ReduceLROnPlateau LambdaLR MultiplicativeLR ConstantLR "
                      "PolynomialLR CosineAnnealingWarmRestarts CyclicLR",
    }),
    ("torch.utils.data", "trainkit.utils.data", {
        "data sets": "Dataset TensorDataset Subset ConcatDataset IterableDataset ChainDataset StackDataset "
                     "random_split",
        "loading": "DataLoader Sampler SequentialSampler RandomSampler SubsetRandomSampler WeightedRandomSampler "
                   "BatchSampler default_collate default_convert get_worker_info DistributedSampler",
    }),
    ("torchvision", "trainkit.vision", {
        "datasets": "datasets.MNIST datasets.FashionMNIST datasets.CIFAR10 datasets.CIFAR100 datasets.ImageFolder",
        "transforms": "transforms.Compose transforms.ToTensor transforms.Normalize transforms.Lambda "
                      "transforms.RandomCrop transforms.RandomHorizontalFlip transforms.Resize "
                      "transforms.CenterCrop transforms.ColorJitter",
        "models": "models.resnet18 models.resnet34 models.resnet50 models.resnet101 models.resnet152 "
                  "models.wide_resnet50_2 models.resnext50_32x4d models.vgg16 models.mobilenet_v2",
        "utils": "utils.make_grid utils.save_image",
    }),
]

_SEQ = "sequence and attention layers: their own issue; not (yet) among the layers it adds"
_FFT = "complex numbers, FFT and sparse tensors: numpy engine is real, dense float/int only"
_DIST = "multi-process training has its own issue (MPI data parallelism), not torch.distributed's API"
_GPU = "CPU-only engine: no kernels to compile, JIT, autocast or quantize"
_RARE = "not implemented yet: rarely used in the example programs this release targets"

#: Reasons for names trainkit leaves out; every uncovered name needs one (the generator checks).
NOT_COVERED: dict[str, str] = {
    **dict.fromkeys("complex polar fft sparse_coo_tensor to_sparse view_as_real".split(), _FFT),
    **dict.fromkeys("compile jit cuda.amp autocast quantization".split(), _GPU),
    **dict.fromkeys("distributed DistributedSampler DataParallel".split(), _DIST),
    "linalg": "torch.linalg is not mirrored; mm/bmm/dot/einsum/norm/trace cover the common uses",
    **dict.fromkeys("Embedding EmbeddingBag RNN LSTM GRU RNNCell LSTMCell GRUCell MultiheadAttention Transformer "
                    "TransformerEncoder TransformerEncoderLayer TransformerDecoder TransformerDecoderLayer LayerNorm "
                    "GroupNorm InstanceNorm1d InstanceNorm2d scaled_dot_product_attention group_norm "
                    "instance_norm".split(), _SEQ),
    **dict.fromkeys("Conv3d ConvTranspose2d conv_transpose2d".split(), "3-D convolution is not implemented "
                    "(1-D, 2-D, grouped, dilated and 2-D transposed are)"),
    "bfloat16": "numpy has no bfloat16",
    "cuda": "CPU only: .cuda() and device('cuda') refuse with a clear message",
    "is_cuda": "CPU only",
    "data_ptr": "numpy arrays have no stable data pointer API of torch's kind",
    "register_hook": "see trainkit.autograd.hooks (issue 17)",
    "SparseAdam": _FFT,
    "models.vgg16": "only the ResNet family is provided (random init, no pretrained weights)",
    "models.mobilenet_v2": "only the ResNet family (with ResNeXt and wide ResNets) is provided",
    **dict.fromkeys("fmod remainder".split(), "not yet as functions: the % operator covers remainder"),
    **dict.fromkeys("empty_like randint_like logspace erfinv mode std_mean var_mean count_nonzero searchsorted "
                    "bucketize tile broadcast_to meshgrid cdist detach_ unfold where ParameterList ParameterDict "
                    "Bilinear Unflatten AlphaDropout CELU Hardsigmoid ReLU6 Softsign Tanhshrink Threshold GLU "
                    "logsigmoid softsign PoissonNLLLoss GaussianNLLLoss MultiLabelSoftMarginLoss ASGD Rprop "
                    "transforms.CenterCrop transforms.ColorJitter".split(), _RARE),
    **dict.fromkeys("MaxPool1d AvgPool1d AdaptiveAvgPool1d AdaptiveMaxPool2d adaptive_max_pool2d Upsample "
                    "PixelShuffle grid_sample fold".split(),
                    "not implemented yet: 1-D pooling, adaptive max pooling and resampling layers are missing from "
                    "the engine"),
    **dict.fromkeys("CTCLoss ctc_loss".split(), "not implemented yet: needs the sequence layers first"),
    "datasets.ImageFolder": "not yet: the image-folder data set is another issue's (trainkit's 'images' branch)",
    "transforms.Resize": "not yet: resampling (interpolate) exists, the transform is not declared",
}

#: Extra remarks shown for covered names.
NOTES: dict[str, str] = {
    "LBFGS": "Python only (needs a closure): not nameable in YAML, the trainer calls step() without one",
    "DataLoader": "num_workers, pin_memory, persistent_workers... accepted; loading runs in the calling process",
    "load": "also reads PyTorch .pt/.pth files through a restricted unpickler; runs nothing",
    "save": "one safetensors file (nested containers as JSON); whole nn.Module objects too, reloaded under "
            "torch.serialization.safe_globals",
    "cuda": "is_available() is False",
    "device": "'cpu' only",
    "models.resnet18": "torchvision's architecture and state-dict layout, random init (weights=None)",
    **dict.fromkeys("add_ sub_ mul_ div_ zero_ fill_ copy_ uniform_ normal_ clamp_ scatter_ masked_fill_".split(),
                    "changes data only, not recorded in the autograd graph: under grad mode it refuses a tensor or "
                    "operand that requires grad (a RuntimeError, not a wrong gradient); free under no_grad"),
}


#: Names trainkit uses for something other than torch's API of that name (trainkit.distributed is data
#: parallelism on MPI, imported on demand): never counted as covering torch's.
_OTHER_API = {("trainkit", "distributed")}


def _resolve(module_name: str, dotted: str):
    if (module_name, dotted) in _OTHER_API:
        return None
    if module_name == "Tensor":
        from trainkit.autograd.tensor import Tensor

        obj = Tensor
    else:
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            return None
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            return None
    return obj


def _yaml_names() -> dict[type, str]:
    import trainkit.data  # noqa: F401  (declarations)
    import trainkit.nn  # noqa: F401
    import trainkit.optim  # noqa: F401
    from trainkit.registry import DATASETS, LAYERS, LOSSES, OPTIMIZERS, SCHEDULERS, TRANSFORMS

    out = {}
    for registry in (LAYERS, LOSSES, OPTIMIZERS, SCHEDULERS, DATASETS, TRANSFORMS):
        for name, decl in registry.items():
            out.setdefault(decl.cls, name)
    return out


def rows() -> list[tuple[str, str, str, bool, str, str]]:
    """(namespace, group, name, covered, yaml name, note) for every curated name."""
    yaml = _yaml_names()
    out = []
    for namespace, module, groups in NAMESPACES:
        for group, names in groups.items():
            for name in names.split():
                obj = _resolve(module, name)
                covered = obj is not None
                note = NOTES.get(name, "") if covered else NOT_COVERED.get(name, "")
                if not covered and not note:
                    raise KeyError(f"{namespace}.{name} is not covered and has no reason in NOT_COVERED")
                y = yaml.get(obj, "") if isinstance(obj, type) else ""
                out.append((namespace, group, name, covered, y, note))
    return out


def render() -> str:
    """The whole page."""
    table = rows()
    lines = ["# The PyTorch API trainkit covers", "",
             "<!-- generated by python -m trainkit.docs_api from trainkit/docs_api.py; do not edit -->", "",
             "`import trainkit as torch` runs PyTorch programs that use the names marked covered below "
             "(torchvision's: `import trainkit.vision as torchvision`). The list is a curated one of what "
             "programs commonly use; coverage is read from the code (the attribute exists on trainkit's "
             "module or `Tensor`), and the YAML column from the component declarations. A name that is "
             "not covered says why.", ""]
    for namespace, _, _ in NAMESPACES:
        mine = [r for r in table if r[0] == namespace]
        n_cov = sum(r[3] for r in mine)
        lines += [f"## `{namespace}` ({n_cov} of {len(mine)} covered)", "",
                  "| group | name | covered | YAML | note |", "| --- | --- | --- | --- | --- |"]
        for _, group, name, covered, y, note in mine:
            lines.append(f"| {group} | `{name}` | {'yes' if covered else '**no**'} | "
                         f"{f'`{y}`' if y else ''} | {note.replace('|', '/')} |")
        lines.append("")
    uncovered = sorted({r[5] for r in table if not r[3]})
    lines += ["## Not covered, and why", ""] + [f"- {reason}" for reason in uncovered] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write docs/api.md (or, with ``--check``, exit 1 when it is stale)."""
    argv = sys.argv[1:] if argv is None else argv
    new = render()
    old = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    if old == new:
        return 0
    if "--check" in argv:
        print(f"stale: {PAGE}\nrun: python -m trainkit.docs_api")
        return 1
    PAGE.write_text(new, encoding="utf-8")
    print(f"wrote: {PAGE}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
