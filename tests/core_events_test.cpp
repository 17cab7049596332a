#include <doctest/doctest.h>
#include <unistd.h>

#include "ddaq/core/events.h"
#include "ddaq/error.h"
#include "ddaq/files.h"
#include "test_support.h"

DOCTEST_TEST_SUITE("events") {
  DOCTEST_TEST_CASE("write / read back in slices / attributes") {
    ddaq_test::TempDir dir;
    const std::string path = dir.file("e.h5");
    std::vector<float> calq(10000 * 48);
    std::vector<int32_t> labels(10000);
    for (size_t i = 0; i < calq.size(); ++i) calq[i] = static_cast<float>(i % 97);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 2);
    {
      ddaq::EventFileWriter w(path, true);
      w.append(calq.data(), labels.data(), 6000);
      w.append(calq.data() + 6000 * 48, labels.data() + 6000, 4000);
      w.set_attribute("seed", int64_t(5));
      w.set_attribute("note", std::string("hello"));
      DOCTEST_CHECK_FALSE(ddaq_test::exists(path));  // only the temporary exists until commit
      w.commit();
    }
    DOCTEST_CHECK(dir.entries().size() == 1);
    const ddaq::EventFileReader r(path);
    DOCTEST_REQUIRE(r.size() == 10000);
    DOCTEST_CHECK(r.has_labels());
    std::vector<float> back(100 * 48);
    std::vector<int32_t> lb(100);
    r.read(5950, 100, back.data(), lb.data());
    for (int i = 0; i < 100 * 48; ++i) DOCTEST_CHECK(back[i] == calq[5950 * 48 + i]);
    for (int i = 0; i < 100; ++i) DOCTEST_CHECK(lb[i] == labels[5950 + i]);
    const auto attrs = r.attributes();
    DOCTEST_CHECK(attrs.at("seed") == "5");
    DOCTEST_CHECK(attrs.at("note") == "hello");
    DOCTEST_CHECK(attrs.at("format") == "ddaq-events-1");
    DOCTEST_CHECK_THROWS_AS(r.read(9999, 2, back.data(), nullptr), ddaq::Error);
  }

  DOCTEST_TEST_CASE("a writer destroyed without commit leaves nothing") {
    ddaq_test::TempDir dir;
    {
      ddaq::EventFileWriter w(dir.file("x.h5"), false);
      std::vector<float> row(48, 1.0f);
      w.append(row.data(), nullptr, 1);
    }
    DOCTEST_CHECK(dir.entries().empty());
  }

  DOCTEST_TEST_CASE("bad files give one clear error naming the file") {
    ddaq_test::TempDir dir;
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::EventFileReader(dir.file("missing.h5")),
                                 (dir.file("missing.h5") + ": cannot open (missing or unreadable)").c_str(),
                                 ddaq::Error);
    ddaq_test::write_text(dir.file("text.h5"), "not hdf5");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::EventFileReader(dir.file("text.h5")),
                                 (dir.file("text.h5") + ": not an HDF5 file").c_str(), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::EventFileWriter(dir.file("no/such/folder/x.h5"), false), ddaq::Error);
  }

  DOCTEST_TEST_CASE("write_file_atomic replaces whole files only") {
    ddaq_test::TempDir dir;
    ddaq::write_file_atomic(dir.file("a.txt"), "one");
    ddaq::write_file_atomic(dir.file("a.txt"), "two");
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("a.txt")) == "two");
    DOCTEST_CHECK(dir.entries().size() == 1);
    DOCTEST_CHECK_THROWS_AS(ddaq::write_file_atomic(dir.file("none/a.txt"), "x"), ddaq::Error);
    ddaq::make_directories(dir.file("p/q"));
    DOCTEST_CHECK(ddaq_test::exists(dir.file("p/q")));
    DOCTEST_CHECK_THROWS_AS(ddaq::make_directories(dir.file("a.txt/sub")), ddaq::Error);
  }

  DOCTEST_TEST_CASE("remove_tree removes a folder's contents and links, never what a link points to") {
    ddaq_test::TempDir dir;
    ddaq::make_directories(dir.file("keep"));
    ddaq_test::write_text(dir.file("keep/precious.txt"), "x");
    ddaq::make_directories(dir.file("tree/a/b"));
    ddaq_test::write_text(dir.file("tree/a/b/f.txt"), "y");
    ddaq_test::write_text(dir.file("tree/g.txt"), "z");
    DOCTEST_REQUIRE(::symlink(dir.file("keep").c_str(), dir.file("tree/a/link").c_str()) == 0);
    DOCTEST_CHECK(ddaq::remove_tree(dir.file("tree")));
    DOCTEST_CHECK(!ddaq_test::exists(dir.file("tree")));
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("keep/precious.txt")) == "x");
    ddaq_test::write_text(dir.file("file.txt"), "w");
    DOCTEST_CHECK(ddaq::remove_tree(dir.file("file.txt")));
    DOCTEST_CHECK(ddaq::remove_tree(dir.file("never-there")));
    DOCTEST_CHECK(dir.entries() == std::vector<std::string>{"keep"});
  }
}
