/*
 * cfn_check: the common case of lumu.cfn.check in C (see cfn_check.c).
 */
#ifndef LUMU_CFN_CHECK_H
#define LUMU_CFN_CHECK_H

#include <lua.h>

/* lumu._cfn.check_ok(template, size, env) -> boolean */
int lumu_cfn_check_ok(lua_State *L);

#endif
