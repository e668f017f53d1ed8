// Every layer in one include: nn/layers/<name>.h holds one layer (or a family) each.
#pragma once
#include "nn/functional.h"
#include "nn/layers/activation.h"
#include "nn/layers/container.h"
#include "nn/layers/dropout.h"
#include "nn/layers/embedding.h"
#include "nn/layers/layer_norm.h"
#include "nn/layers/linear.h"
#include "nn/layers/rotary.h"
#include "nn/module.h"
