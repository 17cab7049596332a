#include "ddaq/core/events.h"

#include <H5Cpp.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/core/version.h"

namespace ddaq {
namespace {

// HDF5's C++ exceptions do not derive from std::exception: translate them at
// this file's boundary so callers only ever see ddaq::Error.
template <class F>
auto hdf5_call(const std::string& path, const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const H5::Exception& e) {
    throw Error(path + ": " + what + " failed (HDF5: " + e.getDetailMsg() + ")");
  }
}

void silence_hdf5() {
  static const bool done = [] {
    H5::Exception::dontPrint();
    return true;
  }();
  (void)done;
}

// No modification times in the file: the same events give the same bytes,
// so a file made again from a seed has the same content identity (a
// checkpoint made from it resumes, docs/reliability.md).
H5::FileCreatPropList untimed_file() {
  H5::FileCreatPropList p;
  H5Pset_obj_track_times(p.getId(), false);
  return p;
}
H5::DSetCreatPropList untimed_dataset() {
  H5::DSetCreatPropList p;
  H5Pset_obj_track_times(p.getId(), false);
  return p;
}

H5::StrType utf8_string_type() {
  H5::StrType t(H5::PredType::C_S1, H5T_VARIABLE);
  t.setCset(H5T_CSET_UTF8);
  return t;
}

}  // namespace

// ---------------------------------------------------------------- writer

struct EventFileWriter::Impl {
  std::string path, tmp_path;
  bool with_labels = false;
  bool committed = false;
  hsize_t cells = kCellsPerWafer;
  H5::H5File file;
  H5::DataSet calq, label;
  int64_t rows = 0;
};

EventFileWriter::EventFileWriter(const std::string& path, bool with_labels, int cells) : impl_(new Impl) {
  silence_hdf5();
  if (cells < 1) throw Error(path + ": an event needs at least one cell, not " + std::to_string(cells));
  impl_->path = path;
  impl_->cells = static_cast<hsize_t>(cells);
  const hsize_t cols = impl_->cells;
  remove_abandoned_temporaries(resolve_output(path));
  impl_->tmp_path = resolve_output(path) + ".tmp-" + std::to_string(::getpid());
  impl_->with_labels = with_labels;
  track_temporary(impl_->tmp_path);
  try {
    impl_->file = H5::H5File(impl_->tmp_path, H5F_ACC_TRUNC, untimed_file());
  } catch (const H5::Exception&) {
    untrack_temporary(impl_->tmp_path);
    throw Error(path + ": cannot create file (is the folder there and writable?)");
  }
  hdf5_call(path, "creating datasets", [&] {
    const bool deflate = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0;
    hsize_t dims[2] = {0, cols}, maxdims[2] = {H5S_UNLIMITED, cols};
    H5::DataSpace space(2, dims, maxdims);
    H5::DSetCreatPropList props = untimed_dataset();
    hsize_t chunk[2] = {4096, cols};
    props.setChunk(2, chunk);
    if (deflate) {
      props.setShuffle();
      props.setDeflate(4);
    }
    impl_->calq = impl_->file.createDataSet("calq", H5::PredType::IEEE_F32LE, space, props);
    if (with_labels) {
      hsize_t ldims[1] = {0}, lmax[1] = {H5S_UNLIMITED}, lchunk[1] = {4096};
      H5::DataSpace lspace(1, ldims, lmax);
      H5::DSetCreatPropList lprops = untimed_dataset();
      lprops.setChunk(1, lchunk);
      if (deflate) lprops.setDeflate(4);
      impl_->label = impl_->file.createDataSet("label", H5::PredType::STD_I32LE, lspace, lprops);
    }
    return 0;
  });
  set_attribute("format", std::string("ddaq-events-1"));
  set_attribute("ddaq_version", std::string(version()));
}

EventFileWriter::~EventFileWriter() {
  if (!impl_->committed) {
    try {
      impl_->file.close();
    } catch (...) {
    }
    std::remove(impl_->tmp_path.c_str());
    untrack_temporary(impl_->tmp_path);
  }
}

void EventFileWriter::append(const float* calq, const int32_t* labels, int64_t rows) {
  if (rows <= 0) return;
  if (impl_->with_labels && labels == nullptr)
    throw Error(impl_->path + ": labels required for a labelled event file");
  const hsize_t cols = impl_->cells;
  hdf5_call(impl_->path, "writing events", [&] {
    const hsize_t first = static_cast<hsize_t>(impl_->rows);
    const hsize_t n = static_cast<hsize_t>(rows);
    hsize_t new_dims[2] = {first + n, cols};
    impl_->calq.extend(new_dims);
    H5::DataSpace file_space = impl_->calq.getSpace();
    hsize_t offset[2] = {first, 0}, count[2] = {n, cols};
    file_space.selectHyperslab(H5S_SELECT_SET, count, offset);
    H5::DataSpace mem_space(2, count);
    impl_->calq.write(calq, H5::PredType::NATIVE_FLOAT, mem_space, file_space);
    if (impl_->with_labels) {
      hsize_t lnew[1] = {first + n}, loff[1] = {first}, lcount[1] = {n};
      impl_->label.extend(lnew);
      H5::DataSpace lfile = impl_->label.getSpace();
      lfile.selectHyperslab(H5S_SELECT_SET, lcount, loff);
      H5::DataSpace lmem(1, lcount);
      impl_->label.write(labels, H5::PredType::NATIVE_INT32, lmem, lfile);
    }
    return 0;
  });
  impl_->rows += rows;
}

void EventFileWriter::append(const EventTable& table) {
  if (static_cast<hsize_t>(table.cells) != impl_->cells)
    throw Error(impl_->path + ": events of " + std::to_string(table.cells) + " cells appended to a file of " +
                std::to_string(impl_->cells));
  append(table.calq.data(), table.has_labels() ? table.label.data() : nullptr, table.size());
}

void EventFileWriter::set_attribute(const std::string& name, const std::string& value) {
  hdf5_call(impl_->path, "writing attribute", [&] {
    if (impl_->file.attrExists(name)) impl_->file.removeAttr(name);
    const H5::StrType type = utf8_string_type();
    H5::Attribute a = impl_->file.createAttribute(name, type, H5::DataSpace(H5S_SCALAR));
    a.write(type, value);
    return 0;
  });
}

void EventFileWriter::set_attribute(const std::string& name, int64_t value) {
  hdf5_call(impl_->path, "writing attribute", [&] {
    if (impl_->file.attrExists(name)) impl_->file.removeAttr(name);
    H5::Attribute a = impl_->file.createAttribute(name, H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR));
    a.write(H5::PredType::NATIVE_INT64, &value);
    return 0;
  });
}

void EventFileWriter::set_attribute(const std::string& name, double value) {
  hdf5_call(impl_->path, "writing attribute", [&] {
    if (impl_->file.attrExists(name)) impl_->file.removeAttr(name);
    H5::Attribute a = impl_->file.createAttribute(name, H5::PredType::IEEE_F64LE, H5::DataSpace(H5S_SCALAR));
    a.write(H5::PredType::NATIVE_DOUBLE, &value);
    return 0;
  });
}

void EventFileWriter::add_dataset(const std::string& name, const std::vector<float>& values,
                                  const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (shape.empty() || shape.size() > 2 || n != static_cast<int64_t>(values.size()))
    throw Error(impl_->path + ": dataset '" + name + "' has " + std::to_string(values.size()) +
                " values for its shape");
  if (name == "calq" || name == "label") throw Error(impl_->path + ": dataset name '" + name + "' is reserved");
  hdf5_call(impl_->path, "writing dataset '" + name + "'", [&] {
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
    H5::DataSet d = impl_->file.createDataSet(name, H5::PredType::IEEE_F32LE, space, untimed_dataset());
    if (!values.empty()) d.write(values.data(), H5::PredType::NATIVE_FLOAT);
    return 0;
  });
}

void EventFileWriter::commit() {
  if (impl_->committed) return;
  hdf5_call(impl_->path, "closing", [&] {
    impl_->calq.close();
    if (impl_->with_labels) impl_->label.close();
    impl_->file.flush(H5F_SCOPE_GLOBAL);
    impl_->file.close();
    return 0;
  });
  impl_->committed = true;  // from here the temporary is move_into_place's
  const std::string target = impl_->tmp_path.substr(0, impl_->tmp_path.rfind(".tmp-"));
  move_into_place(impl_->tmp_path, target);
}

int64_t EventFileWriter::rows_written() const { return impl_->rows; }

// ---------------------------------------------------------------- reader

struct EventFileReader::Impl {
  std::string path;
  H5::H5File file;
  H5::DataSet calq, label;
  int64_t rows = 0;
  hsize_t cells = 0;
  bool has_labels = false;
};

EventFileReader::EventFileReader(const std::string& path, int cells) : impl_(new Impl) {
  silence_hdf5();
  impl_->path = path;
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  bool is_hdf5 = false;
  try {
    is_hdf5 = H5::H5File::isHdf5(path);
  } catch (const H5::Exception&) {
  }
  if (!is_hdf5) throw Error(path + ": not an HDF5 file");
  try {
    impl_->file = H5::H5File(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception& e) {
    // HDF5 locks a file another process has open for writing (flock);
    // its own message does not say so.
    const int fd = ::open(path.c_str(), O_RDONLY);
    const bool locked = fd >= 0 && ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (fd >= 0) ::close(fd);
    if (locked)
      throw Error(path + ": locked by another process that has it open for writing (HDF5 file locking); close it "
                         "there, or set HDF5_USE_FILE_LOCKING=FALSE if nothing writes it");
    throw Error(path + ": opening failed (HDF5: " + e.getDetailMsg() + ")");
  }
  if (!impl_->file.nameExists("calq")) throw Error(path + ": no dataset 'calq'");
  hdf5_call(path, "reading 'calq'", [&] {
    impl_->calq = impl_->file.openDataSet("calq");
    const H5::DataSpace space = impl_->calq.getSpace();
    hsize_t dims[2] = {0, 0};
    const std::string want = cells == kAnyCells ? std::string("C") : std::to_string(cells);
    if (space.getSimpleExtentNdims() != 2) throw Error(path + ": dataset 'calq' must be 2-D [N, " + want + "]");
    space.getSimpleExtentDims(dims);
    if (dims[1] < 1) throw Error(path + ": dataset 'calq' has no columns");
    if (cells != kAnyCells && dims[1] != static_cast<hsize_t>(cells))
      throw Error(path + ": dataset 'calq' has " + std::to_string(dims[1]) + " columns, expected " + want +
                  (cells == kCellsPerWafer ? " (HGCAL trigger cells: this step works on HGCAL wafers)" : ""));
    impl_->cells = dims[1];
    impl_->rows = static_cast<int64_t>(dims[0]);
    return 0;
  });
  if (impl_->file.nameExists("label")) {
    hdf5_call(path, "reading 'label'", [&] {
      impl_->label = impl_->file.openDataSet("label");
      const H5::DataSpace space = impl_->label.getSpace();
      hsize_t dims[1] = {0};
      if (space.getSimpleExtentNdims() != 1) throw Error(path + ": dataset 'label' must be 1-D [N]");
      space.getSimpleExtentDims(dims);
      if (static_cast<int64_t>(dims[0]) != impl_->rows)
        throw Error(path + ": dataset 'label' has " + std::to_string(dims[0]) + " rows, 'calq' has " +
                    std::to_string(impl_->rows));
      return 0;
    });
    impl_->has_labels = true;
  }
}

EventFileReader::~EventFileReader() = default;
EventFileReader::EventFileReader(EventFileReader&&) noexcept = default;
EventFileReader& EventFileReader::operator=(EventFileReader&&) noexcept = default;

const std::string& EventFileReader::path() const { return impl_->path; }
int64_t EventFileReader::size() const { return impl_->rows; }
bool EventFileReader::has_labels() const { return impl_->has_labels; }
int EventFileReader::cells() const { return static_cast<int>(impl_->cells); }

void EventFileReader::read(int64_t first, int64_t count, float* calq, int32_t* labels) const {
  if (first < 0 || count < 0 || first + count > impl_->rows)
    throw Error(impl_->path + ": rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") out of range (file has " + std::to_string(impl_->rows) + ")");
  if (count == 0) return;
  const hsize_t cols = impl_->cells;
  hdf5_call(impl_->path, "reading events", [&] {
    H5::DataSpace file_space = impl_->calq.getSpace();
    hsize_t offset[2] = {static_cast<hsize_t>(first), 0}, n[2] = {static_cast<hsize_t>(count), cols};
    file_space.selectHyperslab(H5S_SELECT_SET, n, offset);
    H5::DataSpace mem_space(2, n);
    impl_->calq.read(calq, H5::PredType::NATIVE_FLOAT, mem_space, file_space);
    if (labels != nullptr && impl_->has_labels) {
      H5::DataSpace lfile = impl_->label.getSpace();
      hsize_t loff[1] = {offset[0]}, ln[1] = {n[0]};
      lfile.selectHyperslab(H5S_SELECT_SET, ln, loff);
      H5::DataSpace lmem(1, ln);
      impl_->label.read(labels, H5::PredType::NATIVE_INT32, lmem, lfile);
    }
    return 0;
  });
  // Whatever wrote the file, ddaq computes only on valid events: a NaN or
  // infinite charge would turn training and EMD into NaN far from its cause.
  for (int64_t r = 0; r < count; ++r) {
    for (hsize_t c = 0; c < cols; ++c) {
      const float q = calq[static_cast<size_t>(r) * cols + c];
      if (!std::isfinite(q) || q < 0.0f)
        throw Error(impl_->path + ": row " + std::to_string(first + r) + ", cell " + std::to_string(c) + ": charge " +
                    std::to_string(q) + " is " + (std::isfinite(q) ? "negative" : "not finite"));
    }
  }
}

EventTable EventFileReader::read_all() const {
  EventTable t;
  t.cells = cells();
  t.calq.resize(static_cast<size_t>(impl_->rows) * impl_->cells);
  if (impl_->has_labels) t.label.resize(static_cast<size_t>(impl_->rows));
  read(0, impl_->rows, t.calq.data(), impl_->has_labels ? t.label.data() : nullptr);
  return t;
}

std::map<std::string, std::string> EventFileReader::attributes() const {
  return hdf5_call(impl_->path, "reading attributes", [&] {
    std::map<std::string, std::string> out;
    const int n = impl_->file.getNumAttrs();
    for (int i = 0; i < n; ++i) {
      H5::Attribute a = impl_->file.openAttribute(static_cast<unsigned>(i));
      const std::string name = a.getName();
      switch (a.getTypeClass()) {
        case H5T_STRING: {
          std::string v;
          a.read(a.getStrType(), v);
          out[name] = v;
          break;
        }
        case H5T_INTEGER: {
          int64_t v = 0;
          a.read(H5::PredType::NATIVE_INT64, &v);
          out[name] = std::to_string(v);
          break;
        }
        case H5T_FLOAT: {
          double v = 0;
          a.read(H5::PredType::NATIVE_DOUBLE, &v);
          std::ostringstream s;
          s.precision(17);
          s << v;
          out[name] = s.str();
          break;
        }
        default:
          break;
      }
    }
    return out;
  });
}

void check_labels(const std::string& file, const int32_t* labels, const int64_t* rows, int64_t n, int classes) {
  for (int64_t r = 0; r < n; ++r)
    if (labels[r] < 0 || labels[r] >= classes)
      throw Error(file + ": row " + std::to_string(rows ? rows[r] : r) + ": label " + std::to_string(labels[r]) +
                  (classes == 2 ? std::string(" (the classifier is binary: 0 jet, 1 electron)")
                                : " (the classification has " + std::to_string(classes) + " classes: 0.." +
                                      std::to_string(classes - 1) + ")"));
}

// ---------------------------------------------------------------- results

void write_results_file(const std::string& path,
                        const std::vector<std::pair<std::string, std::vector<double>>>& datasets,
                        const std::map<std::string, std::string>& attributes) {
  silence_hdf5();
  const std::string target = resolve_output(path);
  remove_abandoned_temporaries(target);
  const std::string tmp = target + ".tmp-" + std::to_string(::getpid());
  track_temporary(tmp);
  try {
    H5::H5File file;
    try {
      file = H5::H5File(tmp, H5F_ACC_TRUNC, untimed_file());
    } catch (const H5::Exception&) {
      throw Error(path + ": cannot create file (is the folder there and writable?)");
    }
    hdf5_call(path, "writing results", [&] {
      for (const auto& ds : datasets) {
        hsize_t dims[1] = {ds.second.size()};
        H5::DataSpace space(1, dims);
        H5::DataSet d = file.createDataSet(ds.first, H5::PredType::IEEE_F64LE, space, untimed_dataset());
        if (!ds.second.empty()) d.write(ds.second.data(), H5::PredType::NATIVE_DOUBLE);
      }
      const H5::StrType type = utf8_string_type();
      std::map<std::string, std::string> attrs = attributes;
      attrs["ddaq_version"] = version();
      for (const auto& kv : attrs) {
        H5::Attribute a = file.createAttribute(kv.first, type, H5::DataSpace(H5S_SCALAR));
        a.write(type, kv.second);
      }
      file.close();
      return 0;
    });
  } catch (...) {
    std::remove(tmp.c_str());
    untrack_temporary(tmp);
    throw;
  }
  move_into_place(tmp, target);
}

std::vector<double> read_results_dataset(const std::string& path, const std::string& name) {
  silence_hdf5();
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  return hdf5_call(path, "reading '" + name + "'", [&] {
    H5::H5File file(path, H5F_ACC_RDONLY);
    if (!file.nameExists(name)) throw Error(path + ": no dataset '" + name + "'");
    H5::DataSet d = file.openDataSet(name);
    const H5::DataSpace space = d.getSpace();
    if (space.getSimpleExtentNdims() != 1) throw Error(path + ": dataset '" + name + "' must be 1-D");
    hsize_t dims[1] = {0};
    space.getSimpleExtentDims(dims);
    std::vector<double> out(dims[0]);
    if (!out.empty()) d.read(out.data(), H5::PredType::NATIVE_DOUBLE);
    return out;
  });
}

}  // namespace ddaq
