#pragma once

#include <string_view>

namespace prefork {

// The current time as an HTTP Date header value, formatted at most once a second per thread.
std::string_view http_date();

}  // namespace prefork
