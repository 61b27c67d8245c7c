import torch

from lightning_llm.data.tokenizer import train_bpe
from lightning_llm.evaluation.multiple_choice import Question, evaluate_task


class FavoursOneToken(torch.nn.Module):
    """Predicts `token` with probability ~1 at every position."""

    def __init__(self, token: int, vocab: int):
        super().__init__()
        self.token, self.vocab = token, vocab
        self.config = type("Config", (), {"max_position_embeddings": 64})()
        self.device = torch.device("cpu")

    def forward(self, input_ids):
        logits = torch.full((1, input_ids.shape[1], self.vocab), -10.0)
        logits[..., self.token] = 10.0
        return type("Out", (), {"logits": logits})()


def test_log_likelihood_scoring_picks_the_choice_the_model_predicts():
    tok = train_bpe(["alpha beta gamma delta " * 50], vocab_size=280)
    favoured = tok(" beta", add_special_tokens=False).input_ids
    assert len(favoured) == 1
    model = FavoursOneToken(favoured[0], len(tok))
    questions = [Question("alpha", [" beta", " gamma"], 0), Question("alpha", [" gamma", " beta"], 1),
                 Question("alpha", [" gamma", " beta"], 0)]
    result = evaluate_task(model, tok, questions, num_fewshot=1)
    assert result == {"acc": 2 / 3, "acc_norm": 2 / 3, "n": 3}
