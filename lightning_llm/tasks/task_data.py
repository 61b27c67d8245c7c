"""What the fine-tuning DataModules share: a typed data config, the folder of the model's tokenizer (the model to
fine-tune), and records read and tokenized in `setup` (per process; it is fast), so `prepare_data` has nothing to
write."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from lightning_llm.config import from_dict
from lightning_llm.data import PretrainDataModule
from lightning_llm.errors import UserError


class TaskDataModule(PretrainDataModule):
    """Base of `SFTDataModule` and `PreferenceDataModule`; subclasses name their `config` class and fill
    `self.datasets` and `self.stats` in `setup`."""

    config: ClassVar[type]

    def __init__(self, data: Any = None, tokenizer: str | Path | None = None, seed: int = 1234):
        super().__init__(seed=seed)
        self.data = from_dict(self.config, data, "data")
        if tokenizer is None:
            raise UserError("fine-tuning needs the model to start from: init_from=<an export/ folder>")
        self.tokenizer_dir = Path(tokenizer)
        self.stats: dict[str, dict[str, int]] = {}

    def prepare_data(self) -> None:
        pass

    @property
    def prepared_dir(self) -> Path:
        return self.tokenizer_dir

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tokenizer_dir": str(self.tokenizer_dir)}
