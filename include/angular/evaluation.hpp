#pragma once
// angular's evaluation of embeddings the way the field reports it:
//   retrieval     precision@1, R-precision, MAP@R, recall@k, mean reciprocal rank
//                 (evaluation/retrieval.hpp), exact, in chunks of references
//   verification  ROC, TAR@FAR, EER, AUC and LFW's 10-fold accuracy (evaluation/verification.hpp)

#include <angular/evaluation/retrieval.hpp>
#include <angular/evaluation/verification.hpp>
