/* curl_transient.h - which of libcurl's transfer failures the steps that
 * speak HTTP (the crawler, the API client) retry: those that happened on the
 * way (a timeout, a refused, dropped or cut connection, a name not resolved
 * yet), not those a retry cannot mend (a bad URL, a TLS failure). Which HTTP
 * statuses are retried is each caller's own rule. */
#ifndef SLUICE_STEPS_CURL_TRANSIENT_H
#define SLUICE_STEPS_CURL_TRANSIENT_H

#include <curl/curl.h>

static inline int curl_transfer_transient(CURLcode rc) {
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_COULDNT_RESOLVE_HOST:
        return 1;
    default:
        return 0;
    }
}

#endif
