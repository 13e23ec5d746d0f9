"""A case's data as both frameworks see it: tfrec's split, numbered the way tfrec's lookups number ids.

Users and items are numbered by their rank among the training ids, which is
tfrec's ``StringLookup`` index minus one; the reference uses these numbers
directly. AutoRec cases also get the dense training rating matrix (small data
only) in the row order of ``tfrec.data.rating_rows``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parity.cases import Case


@dataclasses.dataclass(frozen=True, eq=False)
class CaseData:
    train: object
    test: object
    fingerprint: str
    mean: float
    num_users: int
    num_items: int
    train_users: np.ndarray
    train_items: np.ndarray
    train_ratings: np.ndarray
    test_users: np.ndarray  # test pairs whose user and item are both known
    test_items: np.ndarray
    test_ratings: np.ndarray
    vectors: np.ndarray | None = None  # AutoRec: [rows, width] training ratings, 0 where unobserved
    mask: np.ndarray | None = None
    test_rows_in_vectors: np.ndarray | None = None
    test_columns: np.ndarray | None = None
    fields: object = None  # FM/FFM: ``tfrec.data.fields.Slots`` of the case's fields on the training part
    vectors_by: str | None = None  # AutoRec: ``item`` or ``user``, the rows of ``vectors``


def case_data(case: Case) -> CaseData:
    from tfrec import data as tfdata
    from tfrec import families
    from tfrec.data.vectors import dense_rows, present, rating_rows

    table = tfdata.load(case.data)
    parts = tfdata.split(table, case.split, seed=case.seed)
    train, test = parts.train, parts.test
    users, train_users = present(train.user)
    items, train_items = present(train.item)
    known = np.isin(test.user, users) & np.isin(test.item, items)
    test_users = np.searchsorted(users, test.user[known])
    test_items = np.searchsorted(items, test.item[known])
    extra = {}
    by = families.model_class(case.model).vector_kind(case.model)
    if families.family(case.model).side_features:
        from tfrec.data import fields

        sides = fields.side_tokens(train, case.features)
        extra["fields"] = fields.slots(case.features, sides["user_side"], sides["item_side"])
    if by is not None:
        rows = rating_rows(train, by)
        everything = np.arange(rows.shape[0])
        vectors, mask = (
            t.numpy() for t in dense_rows(rows.row_splits, rows.columns, rows.values, everything, rows.shape[1])
        )
        extra = {
            "vectors": vectors,
            "mask": mask,
            "test_rows_in_vectors": test_items if by == "item" else test_users,
            "test_columns": test_users if by == "item" else test_items,
            "vectors_by": by,
        }
    return CaseData(
        train=train,
        test=test,
        fingerprint=parts.fingerprint,
        mean=float(train.rating.astype(np.float64).mean()),
        num_users=len(users),
        num_items=len(items),
        train_users=train_users.astype(np.int64),
        train_items=train_items.astype(np.int64),
        train_ratings=train.rating.astype(np.float32),
        test_users=test_users.astype(np.int64),
        test_items=test_items.astype(np.int64),
        test_ratings=test.rating[known].astype(np.float32),
        **extra,
    )
