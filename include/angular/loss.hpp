#pragma once
// angular: the four losses of "Angular Learning: Toward Discriminative Embedded Features".
//
//   angular::SoftmaxLoss   modified softmax, CE(x Wᵀ)
//   angular::CenterLoss    CE(x Wᵀ) + λ · ½‖x − c_y‖², centers by Wen et al.'s rule
//   angular::ArcFaceLoss   CE(s·cos(θ_y + m), s·cos θ_j)
//   angular::ArcLoss       CE(k·(π/2 − θ_j)), the paper's angular loss
//
// Each comes as options (options/), free functions (functional/) and a module (modules/),
// like LibTorch's own losses. functional::cosface_loss and normface_loss add the two other
// common margins over cosines. Losses over cosines run fused kernels (kernel_path.hpp).

#include <angular/functional/arc.hpp>
#include <angular/functional/arcface.hpp>
#include <angular/functional/center.hpp>
#include <angular/functional/cosface.hpp>
#include <angular/functional/normface.hpp>
#include <angular/functional/softmax.hpp>
#include <angular/kernel_path.hpp>
#include <angular/modules/arc.hpp>
#include <angular/modules/arcface.hpp>
#include <angular/modules/center.hpp>
#include <angular/modules/softmax.hpp>
#include <angular/options/arc.hpp>
#include <angular/options/arcface.hpp>
#include <angular/options/center.hpp>
#include <angular/options/softmax.hpp>
