#pragma once

// Everything an application needs to serve HTTP under prefork.

#include <prefork/app.hpp>
#include <prefork/request.hpp>
#include <prefork/responder.hpp>
#include <prefork/response.hpp>
#include <prefork/stream.hpp>
#include <prefork/subprocess.hpp>
#include <prefork/task.hpp>
