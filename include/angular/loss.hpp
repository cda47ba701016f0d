#pragma once
// angular: the four losses of "Angular Learning: Toward Discriminative Embedded Features".
//
//   angular::SoftmaxLoss   modified softmax, CE(x Wᵀ)
//   angular::CenterLoss    CE(x Wᵀ) + λ · ½‖x − c_y‖², centers by Wen et al.'s rule
//   angular::ArcFaceLoss   CE(s·cos(θ_y + m), s·cos θ_j)
//   angular::ArcLoss       CE(k·(π/2 − θ_j)), the paper's angular loss
//
// and the margins people compare them with:
//   angular::CosFaceLoss           CE(s·(cos θ_y − m), s·cos θ_j)
//   angular::NormFaceLoss          CE(s·cos θ_j), no margin
//   angular::CombinedMarginLoss    insightface's cos(m1·θ + m2) − m3 (SphereFace/ArcFace/CosFace)
//   angular::SphereFaceLoss        A-Softmax: ‖x‖·ψ(θ), ψ(θ) = (−1)^k cos(mθ) − 2k
//   angular::SubCenterArcFaceLoss  ArcFace over the nearest of K sub-centers per class
//   angular::AdaFaceLoss           a margin adapted to each feature norm
//   angular::CurricularFaceLoss    ArcFace with hard negatives weighted by a curriculum
//
// Each comes as options (options/), free functions over cosines and over features
// (functional/) and a module (modules/), like LibTorch's own losses. Losses run fused kernels
// (kernel_path.hpp).

#include <angular/constants.hpp>
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
#include <angular/memory.hpp>
#include <angular/modules/adaface.hpp>
#include <angular/modules/arc.hpp>
#include <angular/modules/arcface.hpp>
#include <angular/modules/center.hpp>
#include <angular/modules/combined.hpp>
#include <angular/modules/cosface.hpp>
#include <angular/modules/curricularface.hpp>
#include <angular/modules/normface.hpp>
#include <angular/modules/softmax.hpp>
#include <angular/modules/sphereface.hpp>
#include <angular/modules/subcenter_arcface.hpp>

#include <tuple>
#include <variant>

namespace angular {

/// The module of every margin (detail/margin_traits.hpp), in the order of its table: what a
/// program that picks a loss by name goes through (angular-train's --loss does).
using MarginLossModules =
    std::tuple<SoftmaxLossImpl, ArcLossImpl, ArcFaceLossImpl, CosFaceLossImpl, NormFaceLossImpl,
               CombinedMarginLossImpl, SphereFaceLossImpl, SubCenterArcFaceLossImpl, AdaFaceLossImpl,
               CurricularFaceLossImpl>;

namespace detail {

template <class Modules>
struct FuncOptionsOf;
template <class... Modules>
struct FuncOptionsOf<std::tuple<Modules...>> {
  using type = std::variant<typename Modules::FuncOptions...>;
};

template <class T>
struct TypeTag {
  using type = T;
};

template <class... Modules, class F>
void for_each_type(std::tuple<Modules...>*, F&& f) {
  (f(TypeTag<Modules>{}), ...);
}

}  // namespace detail

/// The name of a margin module's loss ("arcface", "subcenter-arcface", ...), as angular-train's
/// --loss spells it.
template <class Module>
constexpr const char* margin_name() {
  return detail::MarginTraits<typename Module::FuncOptions>::kName;
}

/// Calls f(tag) for each margin's module, tag's `type` being the module's class (ArcFaceLossImpl,
/// ...), in the order of MarginLossModules.
template <class F>
void for_each_margin_module(F&& f) {
  detail::for_each_type(static_cast<MarginLossModules*>(nullptr), f);
}

/// Any margin's functional options: a margin chosen at run time (the sharded loss takes one;
/// a module's func_options() is one).
using AnyMargin = detail::FuncOptionsOf<MarginLossModules>::type;

}  // namespace angular
