#pragma once

#include "options.hpp"

#include <string>

namespace prefork::master {

// What a reload changes, for the log: "workers 2 -> 4, bind +127.0.0.1:9000, env".
// "no configuration change" when nothing did (the workers are replaced all the same).
std::string describe_changes(const Options& before, const Options& after);

// Puts back into `next` the running values of the options a reload may not change.
void keep_what_a_reload_cannot_change(Options& next, const Options& running);

}  // namespace prefork::master
