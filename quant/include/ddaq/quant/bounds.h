// ddaq/quant/bounds.h: value ranges of a layer's accumulators, and test
// inputs that reach them.
//
// An accumulator must hold bias + sum(w * x) exactly for every input of the
// layer's input type. The range is computed per output unit by interval
// arithmetic over the input type's [min, max] (a convolution's interior
// position sees the whole kernel), so it is tight: the inputs from
// accumulator_bound_inputs() reach it, and an accumulator one integer bit
// narrower than exact_accumulator_type() overflows on them.
#pragma once
#include <vector>

#include "ddaq/quant/description.h"

namespace ddaq {

struct Interval {
  double lo = 0.0, hi = 0.0;
};

// Per output unit (dense) or output channel (convolutions): the smallest and
// largest accumulator value over all inputs of layer.input_type.
std::vector<Interval> accumulator_ranges(const LayerDescription& layer);

// The narrowest signed type holding every accumulator value exactly: the
// fractional bits of the products and the bias, the integer bits of the
// largest |value| over accumulator_ranges().
FixedPointType exact_accumulator_type(const LayerDescription& layer);

// Model inputs (on the input type's grid) that drive each accumulator of the
// first weighted layer to its largest and to its smallest value, two per
// output unit and position, plus all-minimum and all-maximum inputs.
// Deeper layers see what the first one gives them (no input reaches their
// bounds in general).
std::vector<std::vector<double>> accumulator_bound_inputs(const ModelDescription& model);

}  // namespace ddaq
