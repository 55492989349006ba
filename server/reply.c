/* JSON replies and A1111's error shapes. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

void md_reply_json(md_reply *r, int status, cJSON *json)
{
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    free(r->body);
    r->content_type = "application/json";
    if (!text) {
        static const char oom[] =
            "{\"error\":\"InternalServerError\",\"detail\":\"out of memory\"}";
        r->status = 500;
        r->body = strdup(oom);
        r->size = r->body ? strlen(r->body) : 0;
        return;
    }
    r->status = status;
    r->body = text;
    r->size = strlen(text);
}

static const char *error_name(int status)
{
    switch (status) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 413: return "PayloadTooLarge";
    case 422: return "UnprocessableEntity";
    case 503: return "ServiceUnavailable";
    default: return "InternalServerError";
    }
}

void md_reply_error(md_reply *r, int status, const char *msg)
{
    cJSON *j = cJSON_CreateObject();
    if (j && (!cJSON_AddStringToObject(j, "error", error_name(status)) ||
              !cJSON_AddStringToObject(j, "detail", msg))) {
        cJSON_Delete(j);
        j = NULL;
    }
    md_reply_json(r, status, j);
}
