// Everything in attnlab::optim: optimizers, schedules, clipping, accumulation and training-state
// checkpoints. Include the individual headers where compile time matters.
#pragma once
#include "nn/optim/adam.h"
#include "nn/optim/adamw.h"
#include "nn/optim/checkpoint.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/grad_accum.h"
#include "nn/optim/grad_scaler.h"
#include "nn/optim/optimizer.h"
#include "nn/optim/schedule.h"
#include "nn/optim/sgd.h"
