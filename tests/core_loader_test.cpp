#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "ddaq/error.h"
#include "ddaq/core/loader.h"
#include "test_support.h"

namespace {

// A file whose row i holds i in cell 0 and label i % 3.
std::string make_file(const ddaq_test::TempDir& dir, int64_t n) {
  const std::string path = dir.file("rows.h5");
  ddaq::EventFileWriter w(path, true);
  std::vector<float> calq(n * 48, 0.0f);
  std::vector<int32_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    calq[i * 48] = static_cast<float>(i);
    labels[i] = static_cast<int32_t>(i % 3);
  }
  w.append(calq.data(), labels.data(), n);
  w.commit();
  return path;
}

std::vector<std::vector<int64_t>> epoch_batches(ddaq::EventLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<std::vector<int64_t>> out;
  ddaq::EventBatch b;
  while (loader.next(b)) {
    for (int64_t k = 0; k < b.size(); ++k) {
      DOCTEST_REQUIRE(b.events.calq[k * 48] == static_cast<float>(b.index[k]));  // rows stay whole
      DOCTEST_REQUIRE(b.events.label[k] == b.index[k] % 3);
    }
    out.push_back(b.index);
  }
  return out;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& v) {
  std::vector<int64_t> out;
  for (const auto& b : v) out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

DOCTEST_TEST_SUITE("loader") {
  DOCTEST_TEST_CASE("one rank: every row once per epoch / shuffled / reproducible") {
    ddaq_test::TempDir dir;
    const std::string path = make_file(dir, 5000);
    const auto o = ddaq::LoaderOptions().batch_size(64).seed(3).block_rows(100).window_blocks(4);
    ddaq::EventLoader loader(path, o);
    DOCTEST_CHECK(loader.batches_per_epoch() == 79);
    const auto e0 = epoch_batches(loader, 0), e1 = epoch_batches(loader, 1);
    DOCTEST_CHECK(e0.size() == 79);
    DOCTEST_CHECK(e0.back().size() == 5000 - 78 * 64);
    std::vector<int64_t> all = flatten(e0);
    DOCTEST_CHECK(all != [] { std::vector<int64_t> v(5000); for (int i = 0; i < 5000; ++i) v[i] = i; return v; }());
    std::sort(all.begin(), all.end());
    for (int64_t i = 0; i < 5000; ++i) DOCTEST_REQUIRE(all[i] == i);
    DOCTEST_CHECK(flatten(e0) != flatten(e1));  // a new order each epoch
    ddaq::EventLoader again(path, o);
    DOCTEST_CHECK(epoch_batches(again, 1) == e1);  // same seed, same order
  }

  DOCTEST_TEST_CASE("no shuffle: file order / drop_last drops the partial batch") {
    ddaq_test::TempDir dir;
    const std::string path = make_file(dir, 250);
    ddaq::EventLoader plain(path, ddaq::LoaderOptions().batch_size(100).shuffle(false));
    const auto b = flatten(epoch_batches(plain, 0));
    for (int64_t i = 0; i < 250; ++i) DOCTEST_REQUIRE(b[i] == i);
    ddaq::EventLoader dropping(path, ddaq::LoaderOptions().batch_size(100).drop_last(true));
    DOCTEST_CHECK(dropping.batches_per_epoch() == 2);
    DOCTEST_CHECK(epoch_batches(dropping, 0).size() == 2);
  }

  DOCTEST_TEST_CASE("ranks: disjoint equal shards / R ranks x batch b = 1 rank x batch R*b per step") {
    ddaq_test::TempDir dir;
    const std::string path = make_file(dir, 3001);
    const auto base = ddaq::LoaderOptions().seed(8).block_rows(64).window_blocks(3).drop_last(true);
    ddaq::EventLoader single(path, ddaq::LoaderOptions(base).batch_size(96));
    const auto global = epoch_batches(single, 2);
    std::vector<std::vector<std::vector<int64_t>>> per_rank;
    for (int r = 0; r < 3; ++r) {
      ddaq::EventLoader l(path, ddaq::LoaderOptions(base).batch_size(32).rank(r).world_size(3));
      DOCTEST_CHECK(l.rows_per_rank() == 1000);
      per_rank.push_back(epoch_batches(l, 2));
    }
    std::set<int64_t> seen;
    for (const auto& rb : per_rank)
      for (int64_t i : flatten(rb)) DOCTEST_REQUIRE(seen.insert(i).second);  // disjoint
    DOCTEST_CHECK(seen.size() == 3 * 31 * 32);
    DOCTEST_REQUIRE(per_rank[0].size() == global.size());
    for (size_t step = 0; step < global.size(); ++step) {
      std::vector<int64_t> u;
      for (const auto& rb : per_rank) u.insert(u.end(), rb[step].begin(), rb[step].end());
      std::vector<int64_t> g = global[step];
      std::sort(u.begin(), u.end());
      std::sort(g.begin(), g.end());
      DOCTEST_REQUIRE(u == g);
    }
  }

  DOCTEST_TEST_CASE("bad options are rejected") {
    ddaq_test::TempDir dir;
    const std::string path = make_file(dir, 10);
    DOCTEST_CHECK_THROWS_AS(ddaq::EventLoader(path, ddaq::LoaderOptions().rank(2).world_size(2)), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::EventLoader(path, ddaq::LoaderOptions().batch_size(0)), ddaq::Error);
  }
}
