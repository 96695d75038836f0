"""The content model (issue #17 part 2, `model=content`): item embeddings from content only, so a
cold item is scored from its features and title; the model contract and a CLI run on cold_items."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recctl.models.content import ContentModel, title_bags, title_tokens, title_vocabulary


def test_title_words_are_a_capped_vocabulary_of_shared_words():
    titles = ["Toy Story (1995)", "Story of Us, The (1999)", "The Toy", "Heat (1995)", None]
    assert title_tokens("Usual Suspects, The (1995)") == ["usual", "suspects", "the", "1995"]
    assert title_tokens(None) == []
    # words in >= 2 titles, most titles first, ties alphabetical; capped at size
    assert title_vocabulary(titles, 10, 2) == ["1995", "story", "the", "toy"]
    assert title_vocabulary(titles, 2, 2) == ["1995", "story"]
    bags = title_bags(titles, ["1995", "story", "the", "toy"], 6)
    assert bags.shape == (5, 6) and not bags[:, 4:].any() and not bags[4].any()
    assert np.allclose(bags[0] * np.sqrt(3), [1, 1, 0, 1, 0, 0])  # 1995, story, toy


def _tables(n_items, genre, titles):
    return {
        "item_numeric": np.eye(2, dtype=np.float32)[genre],  # two genre flags
        "item_categorical": (genre[:, None] + 1).astype(np.int32),  # a categorical copy (codes 1, 2)
        "item_titles": np.array(titles, dtype=object),
    }


def _model(n_users, n_items, **kw):
    settings = dict(item_categorical=[3], item_numeric=2, title_words=8, embedding_dim=8)
    settings.update(hidden_units=[16], micro_batch_size=0)
    return ContentModel(n_users=n_users, n_items=n_items, **{**settings, **kw})


def test_contract_score_all_shape_and_safe_mode_round_trip(tmp_path):
    import keras

    genre = np.array([0, 0, 1, 1, 0, 1])
    model = _model(4, 6)
    model.load_tables(_tables(6, genre, ["a x", "a y", "b x", "b y", "a", "b"]))
    content = model.item_content.numpy()
    assert content.shape == (6, model.content_width) == (6, 2 + 3 + 8)
    assert (content[:, :2] == np.eye(2)[genre]).all() and (content[:, 2:5].sum(1) == 1).all()
    history = np.array([[0, 1, -1], [2, -1, -1]], np.int32)
    context = model.context_from_history(history, np.array([0, 1], np.int32))
    scores = np.asarray(model.score_all(context))
    assert scores.shape == (2, 6) and np.isfinite(scores).all()
    path = tmp_path / "content.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is ContentModel and loaded.cold_start == {"items": None}
    np.testing.assert_allclose(np.asarray(loaded.score_all(context)), scores, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dropout should be in"):
        ContentModel(n_users=3, n_items=3, dropout=1.0)
    from recctl.errors import ConfigError

    empty = ContentModel(n_users=3, n_items=3, title_words=4)
    with pytest.raises(ConfigError, match="model=content: the items have no content"):
        empty.load_tables({"item_titles": None})


def test_a_cold_item_like_the_users_history_ranks_above_an_unlike_one():
    import keras

    keras.utils.set_random_seed(3)
    # 24 warm items in two genres (titles share a word per genre), two cold items, one of each genre
    genre = np.array([0, 1] * 12 + [0, 1])
    titles = [("space war " if g == 0 else "love story ") + str(i) for i, g in enumerate(genre)]
    n_users, n_items = 40, len(genre)
    vectors = np.zeros((n_users, n_items), np.float32)
    rng = np.random.default_rng(0)
    for user in range(n_users):  # each user likes one genre; no one has seen the cold items 24, 25
        liked = np.flatnonzero(genre[:24] == user % 2)
        vectors[user, rng.choice(liked, 6, replace=False)] = 1.0
    model = _model(n_users, n_items, dropout=0.5)
    model.load_tables(_tables(n_items, genre, titles))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=model.training_loss())
    model.fit({"vector": vectors}, vectors, batch_size=8, epochs=15, verbose=0)
    history = np.array([np.flatnonzero(vectors[0]), np.flatnonzero(vectors[1])], np.int32)
    scores = np.asarray(model.score_all(model.context_from_history(history, np.array([0, 1], np.int32))))
    assert scores[0, 24] > scores[0, 25]  # a genre-0 user: the genre-0 cold item first
    assert scores[1, 25] > scores[1, 24]
    # explain=true: the cold item's reasons are the user's own history items, of its genre
    from recctl.models.explain import explainer_for

    found = explainer_for(model).explain(model, np.array([0]), [history[0]], np.array([[24]]))
    ((reasons,),) = found.reasons
    assert reasons and all(r.item in set(history[0].tolist()) and genre[r.item] == 0 for r in reasons)
    assert [r.weight for r in reasons] == sorted((r.weight for r in reasons), reverse=True)


@pytest.mark.slow
def test_train_content_on_cold_items_from_the_cli(tmp_path):
    from conftest import TINY, recctl

    proc = recctl(
        "--json",
        "train",
        *TINY,
        "model=content",
        "dataset.split=cold_items",
        "trainer.epochs=2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "ok" and result["model"] == "content"
    assert "cold items" in proc.stderr and "feature_pop" in proc.stderr
    run = sorted((tmp_path / "outputs" / "runs").iterdir())[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert "feature_pop" in json.dumps(metrics)
    refused = recctl("train", *TINY, "model=content", "dataset.split=cold_users", cwd=tmp_path)
    assert refused.returncode == 2 and "model=content cannot score a user without history" in refused.stderr
