"""PyTorch references: the models tfrec ports and one plain training loop (``models``, ``train``: need torch).

Importing this package does not import torch: :data:`REFERENCE_CLASSES` says, without torch, which tfrec
classes have a reference (``train.REFERENCES`` holds their builders).
"""

#: The tfrec model classes (by name) whose PyTorch reference ``train.build`` makes.
REFERENCE_CLASSES = frozenset({
    "MatrixFactorization", "BiasedMatrixFactorization", "NeuralCollaborativeFiltering", "AutoRec",
    "FactorizationMachine", "FieldAwareFactorizationMachine",
})  # fmt: skip
