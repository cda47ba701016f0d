#pragma once
// angular's class-sharded losses over torch.distributed's engine (c10d), opt-in: link the
// CMake target angular::distributed, which brings c10d's Gloo backend (USE_C10D_GLOO; Gloo's
// headers from Debian's libgloo-dev).
//
//   angular::distributed::init_process_group     a process group from torchrun's variables
//   angular::distributed::functional::sharded_margin_loss
//                                                 a margin loss whose classes are split over it
//   angular::distributed::ShardedMarginLoss      the same as a module holding the rank's shard
//   angular::distributed::functional::sharded_center_loss, update_sharded_centers_
//                                                 the center loss with sharded class vectors and centers

#include <angular/distributed/process_group.hpp>
#include <angular/distributed/sharded_center.hpp>
#include <angular/distributed/sharded_loss.hpp>
#include <angular/distributed/sharded_module.hpp>
