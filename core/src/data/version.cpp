#include "ddaq/core/version.h"

namespace ddaq {
const char* version() { return DDAQ_VERSION_STRING; }
}  // namespace ddaq
