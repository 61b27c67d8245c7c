"""Evaluation: language-modelling metrics on any text source, and multiple-choice tasks by log-likelihood."""
