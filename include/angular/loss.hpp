#pragma once
// angular: the four losses of "Angular Learning: Toward Discriminative Embedded Features".
//
//   angular::SoftmaxLoss   modified softmax, CE(x Wᵀ)
//   angular::CenterLoss    CE(x Wᵀ) + λ · ½‖x − c_y‖², centers by Wen et al.'s rule
//   angular::ArcFaceLoss   CE(s·cos(θ_y + m), s·cos θ_j)
//   angular::ArcLoss       CE(k·(π/2 − θ_j)), the paper's angular loss
//
// and the margins people compare them with:
//   angular::CombinedMarginLoss    insightface's cos(m1·θ + m2) − m3 (SphereFace/ArcFace/CosFace)
//   angular::SphereFaceLoss        A-Softmax: ‖x‖·ψ(θ), ψ(θ) = (−1)^k cos(mθ) − 2k
//   angular::SubCenterArcFaceLoss  ArcFace over the nearest of K sub-centers per class
//   angular::AdaFaceLoss           a margin adapted to each feature norm
//   angular::CurricularFaceLoss    ArcFace with hard negatives weighted by a curriculum
//
// Each comes as options (options/), free functions (functional/) and a module (modules/),
// like LibTorch's own losses. functional::cosface_loss and normface_loss add the two other
// common margins over cosines. Losses run fused kernels (kernel_path.hpp).

#include <angular/functional/adaface.hpp>
#include <angular/functional/arc.hpp>
#include <angular/functional/arcface.hpp>
#include <angular/functional/center.hpp>
#include <angular/functional/combined.hpp>
#include <angular/functional/cosface.hpp>
#include <angular/functional/curricularface.hpp>
#include <angular/functional/normface.hpp>
#include <angular/functional/softmax.hpp>
#include <angular/functional/sphereface.hpp>
#include <angular/functional/subcenter_arcface.hpp>
#include <angular/kernel_path.hpp>
#include <angular/label_checks.hpp>
#include <angular/modules/adaface.hpp>
#include <angular/modules/arc.hpp>
#include <angular/modules/arcface.hpp>
#include <angular/modules/center.hpp>
#include <angular/modules/combined.hpp>
#include <angular/modules/curricularface.hpp>
#include <angular/modules/softmax.hpp>
#include <angular/modules/sphereface.hpp>
#include <angular/modules/subcenter_arcface.hpp>
#include <angular/options/arc.hpp>
#include <angular/options/arcface.hpp>
#include <angular/options/center.hpp>
#include <angular/options/softmax.hpp>
