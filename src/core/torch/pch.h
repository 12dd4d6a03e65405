// Precompiled header for the LibTorch plugin: the expensive LibTorch headers, parsed once per build.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>
