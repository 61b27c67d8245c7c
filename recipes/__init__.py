"""Recipes (whole experiments); a package only so that they ship inside the wheel as `lightning_llm/recipes`."""
