// ddaq/options.h: fluent option setters in the style of TORCH_ARG.
#pragma once

// DDAQ_OPTION(int64_t, events) = 1000; declares a field `events_` with a
// default, a getter `events()` and a chainable setter `events(v)`.
#define DDAQ_OPTION(T, name)                                      \
 public:                                                          \
  inline auto name(const T& new_##name)->decltype(*this) {        \
    this->name##_ = new_##name;                                   \
    return *this;                                                 \
  }                                                               \
  inline const T& name() const noexcept { return this->name##_; } \
                                                                  \
 private:                                                         \
  T name##_
