"""Named-entity recognition: CoNLL/JSONL reading, offset alignment, conlleval-style F1 against seqeval,
the bidirectional option, the HF export and its pipeline, and bad input."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoTokenizer

from lightning_llm.data.config import IGNORE
from lightning_llm.errors import UserError
from lightning_llm.tasks.ner_data import NERDataModule, align, label_list, read_conll, to_iob2
from lightning_llm.tasks.ner_metrics import EntityF1, entities

CONLL = """-DOCSTART- -X- O O

The DT B-NP O
king NN I-NP O
Hamlet NNP I-NP B-PER
went VBD B-VP O
to TO B-PP O
Elsinore NNP B-NP B-LOC
. . O O

Good JJ B-NP O
night NN I-NP O
, , O O
Horatio NNP B-NP B-PER
. . O O
"""


def test_conll_reading_skips_docstart_and_reads_the_tag_column(tmp_path):
    f = tmp_path / "train.conll"
    f.write_text(CONLL)
    sents = list(read_conll(f))
    assert [s[0][:3] for s in sents] == [["The", "king", "Hamlet"], ["Good", "night", ","]]
    assert sents[0][1] == ["O", "O", "B-PER", "O", "O", "B-LOC", "O"]
    assert sents[0][2] == f"{f}:3"
    assert next(iter(read_conll(f, tag_column=2)))[1][0] == "B-NP"


def test_a_conll_line_with_the_wrong_column_count_names_its_line(tmp_path):
    f = tmp_path / "bad.conll"
    f.write_text("The DT O\nking NN\n")
    with pytest.raises(UserError, match=r"bad.conll:2: 2 columns, but the file's first line has 3"):
        list(read_conll(f))


def test_iob1_becomes_iob2():
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]) == \
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-PER"]


def test_labels_align_to_the_first_sub_token_of_each_word(tiny_export):
    tok = AutoTokenizer.from_pretrained(tiny_export)
    words = ["The", "noble", "Horatiozzq", "went", "to", "Elsinoreqq", "."]
    tags = ["O", "O", "B-PER", "O", "O", "B-LOC", "O"]
    labels = label_list([tags])
    ids, lab, cut = align(words, tags, tok, {t: i for i, t in enumerate(labels)}, 64)
    assert not cut and len(ids) > len(words)  # made-up names split into several sub-tokens
    firsts = [i for i, x in enumerate(lab) if x != IGNORE]
    assert [labels[lab[i]] for i in firsts] == tags  # one label per word, in order
    text = " ".join(words)
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    starts = [text[s:e].strip() for s, e in (enc["offset_mapping"][i] for i in firsts)]
    assert all(w.startswith(s) for w, s in zip(words, starts, strict=True))
    # the pitfall: pre-split words lose the space marker our byte-level BPE learned
    assert tok(words, is_split_into_words=True, add_special_tokens=False).input_ids != ids


def test_entity_f1_matches_seqeval_on_random_predictions():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 15))] for _ in range(300)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in g] for g in gold]
    metric = EntityF1(tags)
    metric.update(pred, gold)
    ours = metric.compute()
    assert float(ours["f1"]) == pytest.approx(100 * seqeval.f1_score(gold, pred), abs=1e-4)
    assert float(ours["precision"]) == pytest.approx(100 * seqeval.precision_score(gold, pred), abs=1e-4)
    assert float(ours["recall"]) == pytest.approx(100 * seqeval.recall_score(gold, pred), abs=1e-4)
    report = seqeval.classification_report(gold, pred, output_dict=True)
    for kind in ("PER", "LOC", "ORG"):
        assert float(ours[f"f1_{kind}"]) == pytest.approx(100 * report[kind]["f1-score"], abs=1e-4)
    assert entities(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == {("PER", 0, 1), ("PER", 2, 2), ("LOC", 4, 4)}


def _jsonl(tmp_path, rows):
    f = tmp_path / "ner.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_a_tag_unseen_in_train_is_an_error_naming_the_record(tiny_export, tmp_path):
    train = _jsonl(tmp_path, [{"tokens": ["Hamlet", "went"], "ner_tags": ["B-PER", "O"]}] * 10)
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"tokens": ["To", "Elsinore"], "ner_tags": ["O", "B-LOC"]}) + "\n")
    dm = NERDataModule({"format": "jsonl", "data_files": {"train": str(train), "validation": str(train),
                                                          "test": str(test)}}, tiny_export)
    with pytest.raises(UserError, match=r"test.jsonl:1: tag\(s\) \['B-LOC'\] never occur in the train split"):
        dm.setup()


def test_bidirectional_option_lets_tokens_see_the_right(tiny_export):
    from lightning_llm.tasks.ner_module import TokenClassificationModule

    ids = torch.randint(0, 300, (1, 12))
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 300
    for bidirectional in (False, True):
        torch.manual_seed(0)
        m = TokenClassificationModule(str(tiny_export), ["O", "B-PER", "I-PER"], bidirectional=bidirectional).eval()
        with torch.no_grad():
            a, b = m(ids, torch.ones_like(ids)), m(changed, torch.ones_like(ids))
        assert torch.allclose(a[0, 0], b[0, 0]) != bidirectional


def test_ner_export_runs_in_the_transformers_pipeline_and_llm_ner(tiny_export, tmp_path, capsys):
    from lightning_llm.cli.ner import entities as find
    from lightning_llm.cli.ner import main
    from lightning_llm.tasks.ner_module import TokenClassificationModule

    m = TokenClassificationModule(str(tiny_export), ["O", "B-PER", "I-PER"])
    with torch.no_grad():  # a head that tags every token B-PER
        m.model.score.weight.zero_()
        m.model.score.bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
    m.model.save_pretrained(tmp_path / "ner")
    AutoTokenizer.from_pretrained(tiny_export).save_pretrained(tmp_path / "ner")
    (found,) = find(tmp_path / "ner", ["Good night Horatio"])
    assert found and {e["entity_group"] for e in found} == {"PER"}
    assert all(e["word"] == "Good night Horatio"[e["start"]:e["end"]] for e in found)
    main([str(tmp_path / "ner"), "Good night Horatio"])
    assert "PER" in capsys.readouterr().out
    with pytest.raises(UserError, match="not a token classifier"):
        find(tiny_export, ["x"])
