"""Hydra's plugin scan imports every module under `hydra_plugins/`, and one whose import fails prints a six-line
"Error importing ... Plugin is incompatible" warning on every command. So this module imports the sweeper
(`_sweeper.py`, which the scan skips) only where Hydra's Optuna sweeper is installed (pip install
'lightning_llm[sweep]'); without it, it defines nothing and `hydra/sweeper=optuna` fails in one line naming the
extra (lightning_llm.cli._app.use_our_optuna_sweeper).
"""

import importlib.util

if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None:
    from hydra_plugins.lightning_llm_optuna._sweeper import (  # noqa: F401  found by Hydra's scan
        ResumableOptunaSweeper,
        ResumableOptunaSweeperConf,
        register_config,
    )
