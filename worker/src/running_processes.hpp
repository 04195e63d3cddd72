#pragma once

namespace prefork {

// On the loop's thread once the loop has stopped (WorkerRuntime::run): kills the processes
// run_process still waits for and ends their runs with operation_aborted, so that no
// thread (an offload thread on a future) waits for them forever.
void stop_running_processes();

}  // namespace prefork
