"""The `synthetic` source: no files; the rows are drawn by :mod:`recctl.data.synthetic` from the
`dataset.synthetic` settings and the seed, so both belong in the fingerprint."""

from __future__ import annotations

from typing import Any

from recctl.data.raw import RawData
from recctl.data.sources import Source, require
from recctl.data.synthetic import generate


class SyntheticSource(Source):
    seeded = True
    unread_sections = ()

    def check(self, d: Any) -> None:
        s = d.synthetic
        require(s.n_users >= 3, f"dataset.synthetic.n_users must be >= 3. Received: {s.n_users}")
        require(s.n_items >= 3, f"dataset.synthetic.n_items must be >= 3. Received: {s.n_items}")
        require(
            s.mean_interactions >= 3,
            f"dataset.synthetic.mean_interactions must be >= 3. Received: {s.mean_interactions}",
        )
        require(
            0 <= s.sequence_prob <= 1,
            f"dataset.synthetic.sequence_prob must be in [0, 1]. Received: {s.sequence_prob}",
        )
        require(
            s.n_categories >= 1, f"dataset.synthetic.n_categories must be >= 1. Received: {s.n_categories}"
        )
        require(s.latent_dim >= 1, f"dataset.synthetic.latent_dim must be >= 1. Received: {s.latent_dim}")

    def load(self, d: Any, seed: int) -> RawData:
        return generate(d.synthetic, seed)


SOURCE = SyntheticSource()
