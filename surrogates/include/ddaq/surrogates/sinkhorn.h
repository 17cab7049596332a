// ddaq/surrogates/sinkhorn.h: entropic optimal transport (Sinkhorn) as a
// differentiable EMD, the baseline loss the learned surrogate is compared to.
#pragma once
#include "ddaq/options.h"
#include "ddaq/surrogates/ground_metric.h"

namespace at {
class Tensor;
}

namespace ddaq {

struct SinkhornOptions {
  // Entropic regularization, in the ground metric's units (sensor-cell
  // pitches for HGCAL). Small = sharp but slow to converge; the log-domain
  // iterations stay finite in float32 for any epsilon.
  DDAQ_OPTION(double, epsilon) = 0.2;
  DDAQ_OPTION(int, iterations) = 100;
};

// [n, n] float32 tensor of the metric (CPU; move it with .to()).
at::Tensor cost_tensor(const GroundMetric& metric);

// Transport cost <P, C> of the entropic plan P between the rows of a and b
// ([N, n], >= 0, normalized to unit sum inside): [N]. Differentiable in a
// and b (autograd through the unrolled log-domain iterations). An empty row
// gives NaN, as the exact EMD does for one empty wafer.
at::Tensor sinkhorn_emd(const at::Tensor& a, const at::Tensor& b, const at::Tensor& cost,
                        const SinkhornOptions& options = SinkhornOptions());

}  // namespace ddaq
