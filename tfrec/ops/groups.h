// Shared by rows.cc and products.cc.
#ifndef TFREC_OPS_GROUPS_H_
#define TFREC_OPS_GROUPS_H_

#include <cstdint>
#include <vector>

namespace tfrec {

// Groups entries 0..n-1 by their index (each in [0, rows)), keeping their order within a group: a
// stable counting sort. Row r's entries are order[first[r]] .. order[first[r + 1] - 1].
template <typename Tindex>
void GroupByIndex(const Tindex* index, int64_t n, int64_t rows, std::vector<int64_t>* first,
                  std::vector<int64_t>* order) {
  first->assign(rows + 1, 0);
  order->resize(n);
  for (int64_t j = 0; j < n; ++j) ++(*first)[static_cast<int64_t>(index[j]) + 1];
  for (int64_t r = 0; r < rows; ++r) (*first)[r + 1] += (*first)[r];
  std::vector<int64_t> next(first->begin(), first->end() - 1);
  for (int64_t j = 0; j < n; ++j) (*order)[next[index[j]]++] = j;
}

}  // namespace tfrec

#endif  // TFREC_OPS_GROUPS_H_
