// Products with a sparse matrix of observed entries (CPU), for models whose loss reads only
// observed ratings (AutoRec).
//
// A batch of AutoRec's rating vectors is about 5% observed on MovieLens. Its encoder reads only the
// observed inputs and its loss only the observed outputs, so four of the five dense matrix products of
// a training step multiply zeros, and the fifth (the decoder's forward pass) is read only at the
// observed entries. These two kernels do the same sums over the observed entries only:
//
//   TfrecScatterProduct: out[o[j], :] += values[j] * dense[i[j], :]     (S @ dense, or S^T @ dense)
//   TfrecSampledDot:     out[j] = a[ia[j], :] . b[ib[j], :]              ((a @ b^T) at the entries)
//   TfrecTranspose:      a matrix's transpose, for the decoder's kernel and its gradient (faster than TF's
//                        oneDNN transpose of a 300 x 943 kernel here)
//
// TensorFlow's SparseTensorDenseMatMul does the first at about 2 GFLOP/s here, a hundredth of
// a dense product's rate, which eats the whole gain. These split the output rows (scatter) or the
// entries (dot) between the CPU worker threads, prefetch rows ahead, and are compiled for AVX-512,
// AVX2 and plain x86-64 (the loader picks one). Every output element is summed in a fixed order
// whatever the thread count, and the clones do the same float operations, so results do not
// depend on the machine's threads or vector width.
//
// Built on first use by tfrec/ops/__init__.py against the installed TensorFlow, with rows.cc.

#define EIGEN_USE_THREADS
#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"
#include "groups.h"

namespace tfrec {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;

constexpr int64_t kAhead = 8;   // rows prefetched ahead
constexpr int64_t kLanes = 16;  // partial sums of a dot product (one AVX-512 register)

REGISTER_OP("TfrecScatterProduct")
    .Input("out_index: int64")
    .Input("in_index: int64")
    .Input("values: float")
    .Input("dense: float")
    .Input("num_out: int64")
    .Output("out: float")
    .SetShapeFn([](InferenceContext* c) {
      DimensionHandle rows;
      TF_RETURN_IF_ERROR(c->MakeDimForScalarInput(4, &rows));
      c->set_output(0, c->Matrix(rows, c->Dim(c->input(3), 1)));
      return absl::OkStatus();
    })
    .Doc("out = zeros([num_out, k]); out[out_index[j], :] += values[j] * dense[in_index[j], :] for j in order.");

REGISTER_OP("TfrecTranspose")
    .Input("x: float")
    .Output("out: float")
    .SetShapeFn([](InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &x));
      c->set_output(0, c->Matrix(c->Dim(x, 1), c->Dim(x, 0)));
      return absl::OkStatus();
    })
    .Doc("The transpose of a matrix, in cache-sized tiles split between the worker threads.");

REGISTER_OP("TfrecSampledDot")
    .Input("a_index: int64")
    .Input("b_index: int64")
    .Input("a: float")
    .Input("b: float")
    .Output("out: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->Dim(c->input(0), 0)));
      return absl::OkStatus();
    })
    .Doc("out[j] = sum_c a[a_index[j], c] * b[b_index[j], c].");

// Checks that index is 1-D of length n with every entry in [0, rows).
absl::Status CheckIndex(const char* name, const Tensor& index, int64_t n, int64_t rows) {
  if (index.dims() != 1 || index.dim_size(0) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be [", n, "], got ", index.shape().DebugString()));
  }
  const int64_t* ix = index.flat<int64_t>().data();
  for (int64_t j = 0; j < n; ++j) {
    if (ix[j] < 0 || ix[j] >= rows) {
      return absl::InvalidArgumentError(absl::StrCat(name, "[", j, "] = ", ix[j], " is not in [0, ", rows, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckMatrix(const char* name, const Tensor& t) {
  if (t.dims() != 2) return absl::InvalidArgumentError(absl::StrCat(name, " must be 2-D, got ", t.shape().DebugString()));
  return absl::OkStatus();
}

// Output rows [r0, r1): out[r] = sum over the entries j of row r (in order of j) of v[j] * d[i[j]], with the
// entries of row r at order[first[r]] .. order[first[r + 1] - 1]. Each row is summed in a local block of
// columns and stored once.
__attribute__((target_clones("avx512f", "avx2", "default"))) void GatherRows(
    const int64_t* __restrict first, const int64_t* __restrict order, const int64_t* __restrict i,
    const float* __restrict v, const float* __restrict d, float* __restrict out, int64_t k, int64_t r0, int64_t r1) {
  constexpr int64_t kWide = 128;
  float acc[kWide];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t begin = first[r], end = first[r + 1];
    for (int64_t c0 = 0; c0 < k; c0 += kWide) {
      const int64_t width = std::min(kWide, k - c0);
      for (int64_t c = 0; c < kWide; ++c) acc[c] = 0.0f;
      for (int64_t p = begin; p < end; ++p) {
        if (p + 2 < end) __builtin_prefetch(d + i[order[p + 2]] * k + c0, 0, 3);
        const int64_t j = order[p];
        const float value = v[j];
        const float* __restrict dr = d + i[j] * k + c0;
        if (width == kWide) {
          for (int64_t c = 0; c < kWide; ++c) acc[c] += value * dr[c];
        } else {
          for (int64_t c = 0; c < width; ++c) acc[c] += value * dr[c];
        }
      }
      float* __restrict outr = out + r * k + c0;
      for (int64_t c = 0; c < width; ++c) outr[c] = acc[c];
    }
  }
}

// out[j] = a[ia[j]] . b[ib[j]] for j in [start, limit): 16 partial sums, then a fixed pairwise tree.
__attribute__((target_clones("avx512f", "avx2", "default"))) void Dots(
    const int64_t* __restrict ia, const int64_t* __restrict ib, const float* __restrict a,
    const float* __restrict b, float* __restrict out, int64_t start, int64_t limit, int64_t k) {
  for (int64_t j = start; j < limit; ++j) {
    if (j + kAhead < limit) {
      __builtin_prefetch(a + ia[j + kAhead] * k, 0, 0);
      __builtin_prefetch(b + ib[j + kAhead] * k, 0, 0);
    }
    const float* __restrict x = a + ia[j] * k;
    const float* __restrict y = b + ib[j] * k;
    float acc[kLanes] = {0.0f};
    int64_t c = 0;
    for (; c + kLanes <= k; c += kLanes) {
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += x[c + l] * y[c + l];
    }
    for (int64_t l = 0; c + l < k; ++l) acc[l] += x[c + l] * y[c + l];
    for (int64_t width = kLanes / 2; width >= 1; width /= 2) {
      for (int64_t l = 0; l < width; ++l) acc[l] += acc[l + width];
    }
    out[j] = acc[0];
  }
}

// Tiles [t0, t1) of out[c, r] = x[r, c] (x is [p, q]), in kTile x kTile tiles taken row of tiles by row.
__attribute__((target_clones("avx512f", "avx2", "default"))) void TransposeTiles(
    const float* __restrict x, float* __restrict out, int64_t p, int64_t q, int64_t t0, int64_t t1) {
  constexpr int64_t kTile = 32;
  const int64_t across = (q + kTile - 1) / kTile;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t r0 = (t / across) * kTile, c0 = (t % across) * kTile;
    const int64_t r1 = std::min(r0 + kTile, p), c1 = std::min(c0 + kTile, q);
    for (int64_t c = c0; c < c1; ++c) {
      for (int64_t r = r0; r < r1; ++r) out[c * p + r] = x[r * q + c];
    }
  }
}

class Transpose : public OpKernel {
 public:
  explicit Transpose(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES_OK(ctx, CheckMatrix("x", x));
    const int64_t p = x.dim_size(0), q = x.dim_size(1);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ::tensorflow::TensorShape({q, p}), &out));
    const float* xp = x.flat<float>().data();
    float* o = out->flat<float>().data();
    const int64_t tiles = ((p + 31) / 32) * ((q + 31) / 32);
    auto work = [&](int64_t start, int64_t limit) { TransposeTiles(xp, o, p, q, start, limit); };
    auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(threads->num_threads, threads->workers, tiles, 4 * 32 * 32, work);
  }
};

class ScatterProduct : public OpKernel {
 public:
  explicit ScatterProduct(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& values = ctx->input(2);
    const Tensor& dense = ctx->input(3);
    const Tensor& num_out = ctx->input(4);
    OP_REQUIRES(ctx, values.dims() == 1,
                absl::InvalidArgumentError(absl::StrCat("values must be 1-D, got ", values.shape().DebugString())));
    OP_REQUIRES_OK(ctx, CheckMatrix("dense", dense));
    OP_REQUIRES(ctx, num_out.dims() == 0 && num_out.scalar<int64_t>()() >= 0,
                absl::InvalidArgumentError("num_out must be a scalar at least 0"));
    const int64_t n = values.dim_size(0), rows = num_out.scalar<int64_t>()(), k = dense.dim_size(1);
    OP_REQUIRES_OK(ctx, CheckIndex("out_index", ctx->input(0), n, rows));
    OP_REQUIRES_OK(ctx, CheckIndex("in_index", ctx->input(1), n, dense.dim_size(0)));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ::tensorflow::TensorShape({rows, k}), &out));
    float* o = out->flat<float>().data();
    const int64_t* oi = ctx->input(0).flat<int64_t>().data();
    const int64_t* ii = ctx->input(1).flat<int64_t>().data();
    std::vector<int64_t> first, order;  // the entries of each output row, in order of j
    GroupByIndex(oi, n, rows, &first, &order);
    const float* v = values.flat<float>().data();
    const float* d = dense.flat<float>().data();
    auto work = [&](int64_t start, int64_t limit) {
      GatherRows(first.data(), order.data(), ii, v, d, o, k, start, limit);
    };
    auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
    const int64_t per_row = rows == 0 ? 0 : 2 * k * (n / rows + 1);
    ::tensorflow::Shard(threads->num_threads, threads->workers, rows, per_row, work);
  }
};

class SampledDot : public OpKernel {
 public:
  explicit SampledDot(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(2);
    const Tensor& b = ctx->input(3);
    OP_REQUIRES_OK(ctx, CheckMatrix("a", a));
    OP_REQUIRES_OK(ctx, CheckMatrix("b", b));
    OP_REQUIRES(ctx, a.dim_size(1) == b.dim_size(1),
                absl::InvalidArgumentError(absl::StrCat("a ", a.shape().DebugString(), " and b ",
                                                        b.shape().DebugString(), " differ in width")));
    const int64_t n = ctx->input(0).dims() == 1 ? ctx->input(0).dim_size(0) : -1;
    OP_REQUIRES(ctx, n >= 0, absl::InvalidArgumentError("a_index must be 1-D"));
    OP_REQUIRES_OK(ctx, CheckIndex("a_index", ctx->input(0), n, a.dim_size(0)));
    OP_REQUIRES_OK(ctx, CheckIndex("b_index", ctx->input(1), n, b.dim_size(0)));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ::tensorflow::TensorShape({n}), &out));
    const int64_t k = a.dim_size(1);
    const int64_t* ia = ctx->input(0).flat<int64_t>().data();
    const int64_t* ib = ctx->input(1).flat<int64_t>().data();
    const float* ap = a.flat<float>().data();
    const float* bp = b.flat<float>().data();
    float* o = out->flat<float>().data();
    auto work = [&](int64_t start, int64_t limit) { Dots(ia, ib, ap, bp, o, start, limit, k); };
    auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(threads->num_threads, threads->workers, n, 4 * k, work);
  }
};

REGISTER_KERNEL_BUILDER(Name("TfrecScatterProduct").Device(::tensorflow::DEVICE_CPU), ScatterProduct);
REGISTER_KERNEL_BUILDER(Name("TfrecSampledDot").Device(::tensorflow::DEVICE_CPU), SampledDot);
REGISTER_KERNEL_BUILDER(Name("TfrecTranspose").Device(::tensorflow::DEVICE_CPU), Transpose);

}  // namespace
}  // namespace tfrec
