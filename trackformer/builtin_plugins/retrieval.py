"""Builtin retrieval data sets (CUB-200-2011, cub100, Cars196, SOP, In-Shop, image folders) and the
`retrieval` evaluator (Recall@K, MAP@R, R-precision, NMI; see trackformer.eval.retrieval)."""
from dataclasses import dataclass, field
from typing import List, Literal, Optional

from omegaconf import MISSING

from trackformer.hookspecs import hookimpl


@dataclass
class RetrievalDataConfig:
    root: str = MISSING  # absolute, or relative to the working directory
    image_size: int = 224  # test centre crop (and training crop unless train_size is set)
    train_size: Optional[int] = None  # training crop side; smaller than image_size trains faster
    resize: int = 256  # test: shorter side before the centre crop
    scale: List[float] = field(default_factory=lambda: [0.16, 1.0])  # RandomResizedCrop area range
    samples_per_class: int = 0  # K of P x K batches (P = train.batch_size // K); 0 = plain shuffling
    num_train_classes: Optional[int] = None  # first classes that train (default: half); the rest test
    val_classes: int = 0  # last training classes held out for model selection (0: no val split)


@dataclass
class RetrievalEvalConfig:
    ks: List[int] = field(default_factory=lambda: [1, 2, 4, 8])  # Recall@K (SOP: 1, 10, 100, 1000)
    nmi: bool = True
    map_at_r: bool = True
    batch_size: int = 64
    num_workers: int = 0
    backend: Literal["faiss", "torch", "auto"] = "auto"  # exact k-NN engine; auto: faiss when installed
    chunk_size: int = 4096  # query rows per search block: bounds memory

    def __post_init__(self):
        from trackformer.errors import ConfigError

        if not self.ks or min(self.ks) < 1:
            raise ConfigError("ks", "needs one or more K >= 1")


_LAYOUTS = {
    "cub": ("cub", "CUB-200-2011 layout (images.txt, image_class_labels.txt); classes 1-100 train, 101-200 test"),
    "cub100": ("cub", "the 100-class CUB subset (0-based ids); classes 0-49 train, 50-99 test"),
    "cars196": ("cars196", "Cars196 (cars_annos.mat, car_ims/); classes 1-98 train, 99-196 test"),
    "sop": ("sop", "Stanford Online Products (Ebay_train.txt / Ebay_test.txt)"),
    "inshop": ("inshop", "In-Shop clothes retrieval (list_eval_partition.txt; test = query + gallery)"),
    "image_folder": ("folder", "root/<class>/<image>; the first half of the sorted classes train"),
}


def _dataset(layout):
    def factory(cfg, split, **deps):
        from trackformer.data import retrieval

        return retrieval.build(cfg, split, layout)

    return factory


def _evaluator(cfg, **deps):
    from trackformer.eval.retrieval import RetrievalEvaluator

    return RetrievalEvaluator(list(cfg.ks), cfg.nmi, cfg.map_at_r, cfg.batch_size, cfg.num_workers, cfg.backend,
                              cfg.chunk_size)


@hookimpl
def register_datasets(register):
    for name, (layout, text) in _LAYOUTS.items():
        register(name, _dataset(layout), schema=RetrievalDataConfig, help=text)


@hookimpl
def register_evaluators(register):
    register("retrieval", _evaluator, schema=RetrievalEvalConfig,
             help="Recall@K, MAP@R, R-precision, NMI by exact search (faiss / blocked torch)")
