include $(sort $(wildcard $(BR2_EXTERNAL_BASCULE_PATH)/package/*/*.mk))
