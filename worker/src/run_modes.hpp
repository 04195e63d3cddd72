#pragma once

namespace prefork {

class Router;

// A worker of the prefork master: listening sockets arrive on the control socket.
int run_under_master(const Router& router, int control_fd);

// Alone, for development: binds --bind addresses itself.
int run_standalone(const Router& router, int argc, char** argv);

}  // namespace prefork
