"""`llm-prepare`: run the data stages alone (clean, split, tokenizer, shards) and print what was made."""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_llm.cli._app import CONF_DIR, check_recipe_arg, quiet_third_party_logs, run_safely
from lightning_llm.data import PretrainDataModule
from lightning_llm.data.pipeline import read_manifest


def prepare(cfg: DictConfig) -> dict:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    tokenizer = OmegaConf.to_container(cfg.tokenizer, resolve=True)
    datamodule = PretrainDataModule(data, tokenizer, cfg.paths.data_dir)
    datamodule.prepare_data()
    folder = datamodule.prepared_dir
    manifest = read_manifest(folder)
    print(f"Prepared data: {folder}")
    print(f"{'split':<11}{'documents':>10}{'tokens':>12}{'sequences':>11}{'MB':>8}")
    for split, info in manifest["splits"].items():
        print(f"{split:<11}{info['documents']:>10,}{info['tokens']:>12,}{info['sequences']:>11,}"
              f"{info['bytes'] / 1e6:>8.2f}")
    print("cleaning:", json.dumps(manifest["cleaning"]))
    return manifest


@hydra.main(config_path=CONF_DIR, config_name="prepare", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    quiet_third_party_logs()
    run_safely(prepare, cfg)


def main() -> None:
    check_recipe_arg(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
