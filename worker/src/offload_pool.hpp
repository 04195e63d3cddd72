#pragma once

namespace prefork {

// Stops the offload pool, if it was started, and waits for its threads (at the end of run()).
void stop_offload_pool();

}  // namespace prefork
