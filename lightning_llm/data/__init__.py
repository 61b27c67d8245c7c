"""Data stages: sources, cleaning, splitting, tokenizer, packing, and the DataModule that ties them."""

from lightning_llm.data.config import CleaningConfig, DataConfig, SplitConfig, TokenizerConfig
from lightning_llm.data.datamodule import PackedDataset, PretrainDataModule
from lightning_llm.data.pipeline import prepare, prepared_dir

__all__ = ["CleaningConfig", "DataConfig", "PackedDataset", "PretrainDataModule", "SplitConfig",
           "TokenizerConfig", "prepare", "prepared_dir"]
