"""The cleaning suite: HTML to text, Unicode and whitespace repair, boilerplate, the quality rules of a
profile per kind of text judged unit by unit, PII masking, optional language id, then exact and near dedup
across the corpus."""

from lightning_llm.data.cleaning.config import CleaningConfig
from lightning_llm.data.cleaning.profiles import PROFILES, Profile, choose_profile
from lightning_llm.data.cleaning.rules import QualityRules
from lightning_llm.data.cleaning.units import Unit, cut_units, join_units

__all__ = ["PROFILES", "CleaningConfig", "Profile", "QualityRules", "Unit", "choose_profile", "cut_units",
           "join_units"]
