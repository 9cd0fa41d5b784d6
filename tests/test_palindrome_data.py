import torch

from lstmgan.palindrome.data import encode, make_data, random_palindromes


def test_sequences_are_palindromes_and_the_target_is_the_first_digit():
    for length in (1, 4, 5, 20):
        seqs = random_palindromes(64, length, torch.Generator().manual_seed(0))
        assert seqs.shape == (64, length + 1)
        assert torch.equal(seqs, seqs.flip(1))
    data = make_data(7, 300, 0.2, seed=1)
    assert torch.equal(data.train_y, data.train_x[:, 0])
    assert data.train_x.shape[1] == 7


def test_split_is_leak_free_even_when_short_lengths_repeat_sequences():
    data = make_data(length=3, samples=2048, val_fraction=0.2, seed=0)  # only 100 distinct palindromes
    train = {tuple(r) for r in data.train_x.tolist()}
    val = {tuple(r) for r in data.val_x.tolist()}
    assert not train & val
    counts = data.counts()
    assert counts["train_samples"] + counts["val_samples"] == 2048
    assert counts["distinct_train"] == len(train) and counts["distinct_val"] == len(val)
    assert counts["distinct_train"] + counts["distinct_val"] == 100


def test_data_is_a_function_of_the_seed():
    a, b, c = make_data(10, 500, 0.2, 3), make_data(10, 500, 0.2, 3), make_data(10, 500, 0.2, 4)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert not torch.equal(a.train_x, c.train_x)


def test_encodings():
    digits = torch.tensor([[3, 0, 9]])
    onehot = encode(digits, "onehot")
    assert onehot.shape == (1, 3, 10) and onehot[0, 2, 9] == 1 and onehot.sum() == 3
    assert encode(digits, "scalar").squeeze(-1).tolist() == [[3.0, 0.0, 9.0]]
