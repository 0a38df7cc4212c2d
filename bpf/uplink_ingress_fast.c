// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * uplink_ingress_fast.c — uplink_ingress.c with the fast path built in: a
 * packet decapsulated here (tc / xdp engines) or steered (host-gw) for a local
 * pod goes straight into the pod instead of through the flannel-bpf device.
 * A separate object because the fast path needs nf_conntrack's kfuncs; nodes
 * without them load uplink_ingress.o.
 */
#define FBPF_FAST_PATH 1
#define FBPF_UPLINK_INGRESS_NAME fbpf_uplink_ingress_fast
#include "uplink_ingress.c"
