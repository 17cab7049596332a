// ddaq/core/version.h
#pragma once

namespace ddaq {
// Semantic version of this build ("0.1.0"); recorded in every file ddaq writes.
const char* version();
}  // namespace ddaq
