"""`llm-prepare`: run the data stages alone (clean, split, tokenizer, shards) and print what was made."""

from __future__ import annotations

import json

from omegaconf import DictConfig, OmegaConf

from lightning_llm.cli._app import hydra_main
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


main = hydra_main("prepare", prepare)


if __name__ == "__main__":
    main()
