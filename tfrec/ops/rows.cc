// Row updates of embedding tables for tfrec's optimizers (CPU).
//
// TensorFlow's ResourceSparseApplyAdagradV2 and a gather/scatter lazy Adam visit the
// rows of a large table in the batch's order, one cache miss after another. These
// kernels do the same arithmetic on the same rows, but prefetch the rows a few
// positions ahead and split the rows between the CPU worker threads, so the misses
// overlap. Keras' Adam with a sparse gradient (decay and move every row, add the gradient at
// its rows) is one sweep of the table instead of eight whole-table ops, and it sums duplicate rows
// itself. For the Adagrad and lazy Adam kernels the caller sums duplicate rows first: each index
// must appear once.
//
// Built on first use by tfrec/ops/__init__.py against the installed TensorFlow.

#define EIGEN_USE_THREADS
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tensorflow/core/util/work_sharder.h"
#include "groups.h"

namespace tfrec {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using CPUDevice = Eigen::ThreadPoolDevice;

constexpr int64_t kAhead = 8;  // rows prefetched ahead of the one being updated

absl::Status NoOutputs(::tensorflow::shape_inference::InferenceContext*) { return absl::OkStatus(); }

REGISTER_OP("TfrecSparseApplyAdagrad")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("lr: float")
    .Input("epsilon: float")
    .Input("grad: float")
    .Input("indices: Tindices")
    .Attr("Tindices: {int32, int64}")
    .SetShapeFn(NoOutputs)
    .Doc("PyTorch's Adagrad on rows: accum += g*g; var -= lr * g / (sqrt(accum) + epsilon).");

REGISTER_OP("TfrecSparseApplyLazyAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("alpha: float")
    .Input("beta1: float")
    .Input("beta2: float")
    .Input("epsilon: float")
    .Input("grad: float")
    .Input("indices: Tindices")
    .Attr("Tindices: {int32, int64}")
    .SetShapeFn(NoOutputs)
    .Doc("Adam on rows: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; var -= alpha * m / (sqrt(v) + epsilon).");

REGISTER_OP("TfrecSparseGradApplyAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("alpha: float")
    .Input("one_minus_beta1: float")
    .Input("one_minus_beta2: float")
    .Input("epsilon: float")
    .Input("grad: float")
    .Input("indices: Tindices")
    .Attr("Tindices: {int32, int64}")
    .SetShapeFn(NoOutputs)
    .Doc("Keras' Adam with a sparse gradient, every row: m += -m*(1-b1); v += -v*(1-b2); then at the "
         "gradient's rows m += g*(1-b1), v += g*g*(1-b2); then var -= m*alpha / (sqrt(v) + epsilon). "
         "Indices may repeat: a row's g is the sum of its gradient rows, in their order.");

REGISTER_OP("TfrecApplyAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("alpha: float")
    .Input("one_minus_beta1: float")
    .Input("one_minus_beta2: float")
    .Input("epsilon: float")
    .Input("grad: float")
    .SetShapeFn(NoOutputs)
    .Doc("Keras' Adam with a dense gradient, in its order: m += (g - m)*(1-b1); v += (g*g - v)*(1-b2); "
         "var -= m*alpha / (sqrt(v) + epsilon).");

// Checks shapes and indices before anything is written, so a bad call changes no row.
template <typename Tindex>
absl::Status CheckRows(const Tensor& var, const Tensor& grad, const Tensor& indices, int64_t* width) {
  if (var.dims() < 1) return absl::InvalidArgumentError("var must be at least 1-D");
  if (indices.dims() != 1) return absl::InvalidArgumentError("indices must be 1-D");
  const int64_t n = indices.dim_size(0);
  if (grad.dims() != var.dims() || grad.dim_size(0) != n) {
    return absl::InvalidArgumentError(absl::StrCat("grad must be [", n, ", ...] like var, got ",
                                                   grad.shape().DebugString()));
  }
  for (int d = 1; d < var.dims(); ++d) {
    if (grad.dim_size(d) != var.dim_size(d)) {
      return absl::InvalidArgumentError(absl::StrCat("grad ", grad.shape().DebugString(),
                                                     " does not match var ", var.shape().DebugString()));
    }
  }
  const int64_t rows = var.dim_size(0);
  const Tindex* ix = indices.flat<Tindex>().data();
  for (int64_t i = 0; i < n; ++i) {
    if (ix[i] < 0 || ix[i] >= rows) {
      return absl::InvalidArgumentError(absl::StrCat("indices[", i, "] = ", static_cast<int64_t>(ix[i]),
                                                     " is not in [0, ", rows, ")"));
    }
  }
  *width = rows == 0 ? 0 : var.NumElements() / rows;
  return absl::OkStatus();
}

// Reads the tables of inputs 0..count-1 (var, then its slots, all of var's shape) and checks the
// gradient (input grad_input) and its indices (the next input) against var. The caller holds the
// tables' locks; nothing is written here.
template <typename Tindex>
absl::Status ReadTables(OpKernelContext* ctx, int count, int grad_input, std::vector<Tensor>* tables,
                        int64_t* width) {
  for (int i = 0; i < count; ++i) {
    Tensor table;
    TF_RETURN_IF_ERROR(::tensorflow::GetInputTensorFromVariable<CPUDevice, float>(ctx, i, false, true, &table));
    if (i > 0 && table.shape() != (*tables)[0].shape()) {
      return absl::InvalidArgumentError(absl::StrCat("slot ", i, " is ", table.shape().DebugString(), ", var ",
                                                     (*tables)[0].shape().DebugString()));
    }
    tables->push_back(table);
  }
  return CheckRows<Tindex>((*tables)[0], ctx->input(grad_input), ctx->input(grad_input + 1), width);
}

inline void Prefetch(const float* row, int64_t width) {
  for (int64_t k = 0; k < width; k += 16) __builtin_prefetch(row + k, 1, 0);
}

// Runs update(i) for every row i, split between the worker threads, prefetching ahead.
template <typename Tindex, typename Update>
void ForEachRow(OpKernelContext* ctx, const Tensor& indices, int64_t width, std::initializer_list<float*> tables,
                Update update) {
  const Tindex* ix = indices.flat<Tindex>().data();
  const int64_t n = indices.dim_size(0);
  auto work = [&](int64_t start, int64_t limit) {
    for (int64_t i = start; i < limit; ++i) {
      if (i + kAhead < limit) {
        const int64_t ahead = static_cast<int64_t>(ix[i + kAhead]) * width;
        for (float* t : tables) Prefetch(t + ahead, width);
      }
      update(i, static_cast<int64_t>(ix[i]) * width);
    }
  };
  auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
  ::tensorflow::Shard(threads->num_threads, threads->workers, n, 16 * width * tables.size(), work);
}

template <typename Tindex>
class SparseApplyAdagrad : public OpKernel {
 public:
  explicit SparseApplyAdagrad(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(ctx, false, true, {0, 1});
    std::vector<Tensor> tables;
    int64_t width = 0;
    OP_REQUIRES_OK(ctx, ReadTables<Tindex>(ctx, 2, 4, &tables, &width));
    const Tensor& grad = ctx->input(4);
    const Tensor& indices = ctx->input(5);
    const float lr = ctx->input(2).scalar<float>()();
    const float epsilon = ctx->input(3).scalar<float>()();
    float* v = tables[0].flat<float>().data();
    float* a = tables[1].flat<float>().data();
    const float* g = grad.flat<float>().data();
    ForEachRow<Tindex>(ctx, indices, width, {v, a}, [&](int64_t i, int64_t row) {
      const float* gi = g + i * width;
      float* vr = v + row;
      float* ar = a + row;
      for (int64_t k = 0; k < width; ++k) {
        ar[k] += gi[k] * gi[k];
        vr[k] -= lr * gi[k] / (std::sqrt(ar[k]) + epsilon);
      }
    });
  }
};

// The two Adam kernels' shared inputs: var, m, v; alpha, two betas (or one minus them), epsilon;
// the gradient's rows and their indices. Locks and checks them, then calls Apply.
template <typename Tindex>
class AdamRows : public OpKernel {
 public:
  explicit AdamRows(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(ctx, false, true, {0, 1, 2});
    std::vector<Tensor> tables;
    int64_t width = 0;
    OP_REQUIRES_OK(ctx, ReadTables<Tindex>(ctx, 3, 7, &tables, &width));
    const float scalars[4] = {ctx->input(3).scalar<float>()(), ctx->input(4).scalar<float>()(),
                              ctx->input(5).scalar<float>()(), ctx->input(6).scalar<float>()()};
    Apply(ctx, tables[0], tables[1].flat<float>().data(), tables[2].flat<float>().data(), scalars, ctx->input(7),
          ctx->input(8), width);
  }

 protected:
  virtual void Apply(OpKernelContext* ctx, Tensor& var, float* m, float* v, const float* scalars, const Tensor& grad,
                     const Tensor& indices, int64_t width) = 0;
};

// TfrecSparseApplyLazyAdam: scalars are alpha, beta1, beta2, epsilon.
template <typename Tindex>
class SparseApplyLazyAdam : public AdamRows<Tindex> {
 public:
  using AdamRows<Tindex>::AdamRows;

 protected:
  void Apply(OpKernelContext* ctx, Tensor& var, float* mp, float* vp, const float* scalars, const Tensor& grad,
             const Tensor& indices, int64_t width) override {
    const float alpha = scalars[0], beta1 = scalars[1], beta2 = scalars[2], epsilon = scalars[3];
    const float one_minus_beta1 = 1.0f - beta1, one_minus_beta2 = 1.0f - beta2;
    float* w = var.flat<float>().data();
    const float* g = grad.flat<float>().data();
    ForEachRow<Tindex>(ctx, indices, width, {w, mp, vp}, [&](int64_t i, int64_t row) {
      const float* gi = g + i * width;
      float* wr = w + row;
      float* mr = mp + row;
      float* vr = vp + row;
      for (int64_t k = 0; k < width; ++k) {
        mr[k] = beta1 * mr[k] + one_minus_beta1 * gi[k];
        vr[k] = beta2 * vr[k] + one_minus_beta2 * (gi[k] * gi[k]);
        wr[k] -= alpha * mr[k] / (std::sqrt(vr[k]) + epsilon);
      }
    });
  }
};

// Rows [r0, r1) of Keras' Adam step for a sparse gradient (TfrecSparseGradApplyAdam). Row r's gradient
// rows are g[order[p]] for p in [first[r], first[r + 1]); they are summed from zero in that order, as
// TF's UnsortedSegmentSum (Keras' duplicate sum) adds them. Compiled for AVX-512, AVX2 and plain x86-64
// (the same IEEE operations in each).
__attribute__((target_clones("avx512f", "avx2", "default"))) void SparseAdamRows(
    float* __restrict w, float* __restrict m, float* __restrict v, const float* __restrict g,
    const int64_t* __restrict first, const int64_t* __restrict order, float* __restrict sum, int64_t width,
    float alpha, float omb1, float omb2, float epsilon, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1;) {
    // Rows without a gradient up to the next row with one: decay and move, as one flat run.
    int64_t next = r;
    while (next < r1 && first[next] == first[next + 1]) ++next;
    for (int64_t k = r * width; k < next * width; ++k) {
      m[k] = m[k] + -(m[k] * omb1);
      v[k] = v[k] + -(v[k] * omb2);
      w[k] = w[k] - (m[k] * alpha) / (std::sqrt(v[k]) + epsilon);
    }
    if (next == r1) break;
    float* __restrict wr = w + next * width;
    float* __restrict mr = m + next * width;
    float* __restrict vr = v + next * width;
    for (int64_t k = 0; k < width; ++k) sum[k] = 0.0f;
    for (int64_t p = first[next]; p < first[next + 1]; ++p) {
      const float* __restrict gr = g + order[p] * width;
      for (int64_t k = 0; k < width; ++k) sum[k] += gr[k];
    }
    for (int64_t k = 0; k < width; ++k) {
      mr[k] = mr[k] + -(mr[k] * omb1);
      vr[k] = vr[k] + -(vr[k] * omb2);
      mr[k] = mr[k] + sum[k] * omb1;
      vr[k] = vr[k] + (sum[k] * sum[k]) * omb2;
      wr[k] = wr[k] - (mr[k] * alpha) / (std::sqrt(vr[k]) + epsilon);
    }
    r = next + 1;
  }
}

// TfrecSparseGradApplyAdam: Keras' Adam step for a sparse gradient, in Keras' order of operations, in
// one sweep of the table instead of Keras' eight whole-table ops and its duplicate sum (tf.unique and
// UnsortedSegmentSum): rows outside the batch decay and move, rows in it also take the sum of their
// gradient rows. Scalars are alpha, 1 - beta1, 1 - beta2, epsilon.
template <typename Tindex>
class SparseGradApplyAdam : public AdamRows<Tindex> {
 public:
  using AdamRows<Tindex>::AdamRows;

 protected:
  void Apply(OpKernelContext* ctx, Tensor& var, float* mp, float* vp, const float* scalars, const Tensor& grad,
             const Tensor& indices, int64_t width) override {
    const int64_t rows = var.dim_size(0), n = indices.dim_size(0);
    std::vector<int64_t> first, order;  // the gradient rows of each table row, in their order
    GroupByIndex(indices.flat<Tindex>().data(), n, rows, &first, &order);
    float* w = var.flat<float>().data();
    const float* g = grad.flat<float>().data();
    auto work = [&](int64_t start, int64_t limit) {
      std::vector<float> sum(width);
      SparseAdamRows(w, mp, vp, g, first.data(), order.data(), sum.data(), width, scalars[0], scalars[1],
                     scalars[2], scalars[3], start, limit);
    };
    auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(threads->num_threads, threads->workers, rows, 8 * width, work);
  }
};

// Keras' dense Adam on elements [start, limit), compiled for AVX-512, AVX2 and plain x86-64.
__attribute__((target_clones("avx512f", "avx2", "default"))) void AdamSweep(
    float* __restrict w, float* __restrict m, float* __restrict v, const float* __restrict g, float alpha, float omb1,
    float omb2, float epsilon, int64_t start, int64_t limit) {
  for (int64_t k = start; k < limit; ++k) {
    m[k] = m[k] + (g[k] - m[k]) * omb1;
    v[k] = v[k] + (g[k] * g[k] - v[k]) * omb2;
    w[k] = w[k] - (m[k] * alpha) / (std::sqrt(v[k]) + epsilon);
  }
}

// TfrecApplyAdam: Keras' dense Adam step in one sweep of the three tables instead of eleven whole-table ops.
class ApplyAdam : public OpKernel {
 public:
  explicit ApplyAdam(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(ctx, false, true, {0, 1, 2});
    std::vector<Tensor> tables;
    for (int i = 0; i < 3; ++i) {
      Tensor table;
      OP_REQUIRES_OK(ctx, ::tensorflow::GetInputTensorFromVariable<CPUDevice, float>(ctx, i, false, true, &table));
      tables.push_back(table);
    }
    const Tensor& grad = ctx->input(7);
    for (int i = 1; i < 3; ++i) {
      OP_REQUIRES(ctx, tables[i].shape() == tables[0].shape(),
                  absl::InvalidArgumentError(absl::StrCat("slot ", i, " is ", tables[i].shape().DebugString(),
                                                          ", var ", tables[0].shape().DebugString())));
    }
    OP_REQUIRES(ctx, grad.shape() == tables[0].shape(),
                absl::InvalidArgumentError(absl::StrCat("grad ", grad.shape().DebugString(), " does not match var ",
                                                        tables[0].shape().DebugString())));
    const float alpha = ctx->input(3).scalar<float>()(), omb1 = ctx->input(4).scalar<float>()();
    const float omb2 = ctx->input(5).scalar<float>()(), epsilon = ctx->input(6).scalar<float>()();
    float* w = tables[0].flat<float>().data();
    float* mp = tables[1].flat<float>().data();
    float* vp = tables[2].flat<float>().data();
    const float* g = grad.flat<float>().data();
    auto work = [&](int64_t start, int64_t limit) { AdamSweep(w, mp, vp, g, alpha, omb1, omb2, epsilon, start, limit); };
    auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(threads->num_threads, threads->workers, grad.NumElements(), 8, work);
  }
};

REGISTER_KERNEL_BUILDER(Name("TfrecApplyAdam").Device(::tensorflow::DEVICE_CPU), ApplyAdam);

#define TFREC_REGISTER(NAME, KERNEL)                                                                      \
  REGISTER_KERNEL_BUILDER(                                                                                \
      Name(NAME).Device(::tensorflow::DEVICE_CPU).TypeConstraint<int32_t>("Tindices"), KERNEL<int32_t>); \
  REGISTER_KERNEL_BUILDER(                                                                                \
      Name(NAME).Device(::tensorflow::DEVICE_CPU).TypeConstraint<int64_t>("Tindices"), KERNEL<int64_t>)

TFREC_REGISTER("TfrecSparseApplyAdagrad", SparseApplyAdagrad);
TFREC_REGISTER("TfrecSparseApplyLazyAdam", SparseApplyLazyAdam);
TFREC_REGISTER("TfrecSparseGradApplyAdam", SparseGradApplyAdam);

}  // namespace
}  // namespace tfrec
