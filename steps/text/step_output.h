/* step_output.h - an output port that is a folder, as the steps that write
 * one (embed, index, train) make it. */
#ifndef SLUICE_STEPS_STEP_OUTPUT_H
#define SLUICE_STEPS_STEP_OUTPUT_H

#include <sluice/plugin.h>

/* Creates the folder of output port (it may exist) and points *path at it
 * (the host's string, valid until run returns). SL_OK, or an SL_E* code
 * after sl_fail() naming the port and why. */
int step_output_folder(sl_ctx *ctx, const char *port, const char **path);

#endif
