"""Products at a sparse matrix's observed entries in tfrec's native kernels (``products.cc``), for AutoRec."""

from __future__ import annotations

from tfrec._keras import tf
from tfrec.ops._library import _native_for


def product_kernels(*variables, allow: bool = True):
    """The kernels of :func:`observed_matmul` and :func:`sampled_matmul` for float32 ``variables`` on a CPU.

    None where they do not apply (``allow`` False, say under XLA; a variable on a GPU or not
    float32; the build failed or is turned off): the caller then takes its dense products.
    """
    return _native_for(allow, *variables)


def observed_matmul(kernels, rows, cols, values, dense, num_rows):
    """``S @ dense`` for the sparse ``[num_rows, len(dense)]`` matrix ``S[rows[j], cols[j]] = values[j]``.

    ``rows``, ``cols``: int64 ``[n]``; ``values``: float32 ``[n]``; ``dense``: float32 ``[m, k]``;
    the result is ``[num_rows, k]``. Each output row sums its entries in the order of ``j``.
    Differentiable in ``values`` and ``dense``. ``kernels``: from :func:`product_kernels`.
    """
    num_rows = tf.cast(num_rows, tf.int64)

    @tf.custom_gradient
    def product(values, dense):
        def grad(upstream):
            d_values = kernels.tfrec_sampled_dot(rows, cols, upstream, dense)
            d_dense = kernels.tfrec_scatter_product(cols, rows, values, upstream, tf.shape(dense, out_type=tf.int64)[0])
            return d_values, d_dense

        return kernels.tfrec_scatter_product(rows, cols, values, dense, num_rows), grad

    return product(values, dense)


def sampled_matmul(kernels, rows, cols, a, b):
    """``(a @ b)[rows[j], cols[j]]`` for every ``j``, without the rest of the product.

    ``a``: float32 ``[p, k]``; ``b``: float32 ``[k, q]`` (a Dense layer's kernel); ``rows``,
    ``cols``: int64 ``[n]``; the result is ``[n]``. Differentiable in ``a`` and ``b``; their
    gradients are :func:`observed_matmul` products, so no ``[p, q]`` matrix is made either way.
    """

    @tf.custom_gradient
    def product(a, b):
        columns = kernels.tfrec_transpose(b)  # [q, k]: b's columns as rows, for this product and the gradient's

        def grad(upstream):
            d_a = kernels.tfrec_scatter_product(rows, cols, upstream, columns, tf.shape(a, out_type=tf.int64)[0])
            q = tf.shape(b, out_type=tf.int64)[1]
            d_b = kernels.tfrec_transpose(kernels.tfrec_scatter_product(cols, rows, upstream, a, q))
            return d_a, d_b

        return kernels.tfrec_sampled_dot(rows, cols, a, columns), grad

    return product(a, b)
